// TLS for wss:// urls, through Asio's OpenSSL support: what a server needs to present,
// and what a client trusts. TLS 1.2 is the oldest version either side speaks.
#pragma once

#include <string>

namespace websockets {

/// A server's TLS identity, for a `wss://` url. Both files are PEM; the server reads
/// them when it is constructed and throws `std::invalid_argument` (with OpenSSL's
/// reason) when they cannot be used.
struct server_tls {
  /// The certificate, followed by any intermediate certificates up to the root.
  std::string certificate_chain_file{};
  /// The private key of the certificate (not encrypted).
  std::string private_key_file{};
};

/// What a client trusts when it connects to a `wss://` url.
struct client_tls {
  /// Check the server's certificate chain and that it names the url's host. Turn it
  /// off only for tests against a self-signed certificate: without it anyone between
  /// the client and the server can read and change everything.
  bool verify = true;
  /// Trust anchors (PEM) besides the system's (`/etc/ssl/certs`), such as a test CA
  /// or a self-signed certificate.
  std::string ca_file{};
  /// The name checked against the certificate and sent as SNI; empty: the url's host.
  std::string server_name{};
};

} // namespace websockets
