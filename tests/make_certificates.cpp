// Writes a fresh test CA and a server certificate it signs for localhost, 127.0.0.1 and
// ::1 (see certificates.hpp), for the tests that run other programs over TLS.
//
//   make-certificates DIRECTORY      writes ca.pem, chain.pem, key.pem, wrong-name.pem
#include "certificates.hpp"

#include <cstdio>
#include <exception>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make-certificates DIRECTORY\n");
    return 2;
  }
  try {
    const auto files = test_tls::make_certificates(argv[1]);
    std::printf("%s\n%s\n%s\n", files.ca.c_str(), files.chain.c_str(), files.key.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make-certificates: %s\n", e.what());
    return 1;
  }
}
