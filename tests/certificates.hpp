// Test certificates made at test time: a CA, and a certificate it signs for localhost,
// 127.0.0.1 and ::1, both with EC P-256 keys. Clients trust the CA (never the system's
// anchors), so the whole verification path runs as it does in production.
#pragma once

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>

namespace test_tls {

/// Where `make_certificates` wrote its files (PEM).
struct certificate_files {
  std::string ca;          // the CA's certificate: what clients trust
  std::string chain;       // the server's certificate, then the CA's
  std::string key;         // the server's private key
  std::string wrong_name;  // a certificate the CA signed for another host, with `key`
};

namespace detail {

struct x509_free {
  void operator()(X509* x) const noexcept { X509_free(x); }
};
struct pkey_free {
  void operator()(EVP_PKEY* k) const noexcept { EVP_PKEY_free(k); }
};
using x509_ptr = std::unique_ptr<X509, x509_free>;
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_free>;

inline void check(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string("making test certificates: ") + what);
}

inline void add_extension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX context;
  X509V3_set_ctx_nodb(&context);
  X509V3_set_ctx(&context, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* extension = X509V3_EXT_conf_nid(nullptr, &context, nid, value);
  check(extension != nullptr, "extension");
  check(X509_add_ext(cert, extension, -1) == 1, "add extension");
  X509_EXTENSION_free(extension);
}

/// A certificate for `common_name` and `key`, signed by `issuer` with `issuer_key`
/// (itself when null).
inline x509_ptr make_certificate(const char* common_name, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key,
                                 long serial, const char* alt_names) {
  x509_ptr cert{X509_new()};
  check(cert != nullptr, "X509_new");
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 7L * 24 * 3600);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(common_name), -1, -1, 0);
  X509* signer = issuer ? issuer : cert.get();
  X509_set_issuer_name(cert.get(), X509_get_subject_name(signer));
  if (alt_names) {
    add_extension(cert.get(), signer, NID_basic_constraints, "critical,CA:FALSE");
    add_extension(cert.get(), signer, NID_ext_key_usage, "serverAuth");
    add_extension(cert.get(), signer, NID_subject_alt_name, alt_names);
  } else {
    add_extension(cert.get(), signer, NID_basic_constraints, "critical,CA:TRUE");
    add_extension(cert.get(), signer, NID_key_usage, "critical,keyCertSign,cRLSign");
  }
  add_extension(cert.get(), signer, NID_subject_key_identifier, "hash");
  check(X509_sign(cert.get(), issuer_key ? issuer_key : key, EVP_sha256()) > 0, "X509_sign");
  return cert;
}

inline void write_pem(const std::string& path, X509* first, X509* second, EVP_PKEY* key) {
  std::FILE* file = std::fopen(path.c_str(), "w");
  check(file != nullptr, "open output file");
  bool ok = true;
  if (first) ok = ok && PEM_write_X509(file, first) == 1;
  if (second) ok = ok && PEM_write_X509(file, second) == 1;
  if (key) ok = ok && PEM_write_PrivateKey(file, key, nullptr, nullptr, 0, nullptr, nullptr) == 1;
  std::fclose(file);
  check(ok, "PEM_write");
}

} // namespace detail

/// Makes a fresh CA and a server certificate signed by it in `directory` (created if
/// needed): `ca.pem`, `chain.pem`, `key.pem` and `wrong-name.pem`.
inline certificate_files make_certificates(const std::filesystem::path& directory) {
  using namespace detail;
  std::filesystem::create_directories(directory);
  pkey_ptr ca_key{EVP_EC_gen("P-256")};
  pkey_ptr server_key{EVP_EC_gen("P-256")};
  check(ca_key && server_key, "EVP_EC_gen");
  auto ca = make_certificate("websockets test CA", ca_key.get(), nullptr, nullptr, 1, nullptr);
  auto server = make_certificate("localhost", server_key.get(), ca.get(), ca_key.get(), 2,
                                 "DNS:localhost,IP:127.0.0.1,IP:::1");
  auto elsewhere = make_certificate("elsewhere.example", server_key.get(), ca.get(), ca_key.get(), 3,
                                    "DNS:elsewhere.example");
  certificate_files files{(directory / "ca.pem").string(), (directory / "chain.pem").string(),
                          (directory / "key.pem").string(), (directory / "wrong-name.pem").string()};
  write_pem(files.ca, ca.get(), nullptr, nullptr);
  write_pem(files.chain, server.get(), ca.get(), nullptr);
  write_pem(files.key, nullptr, nullptr, server_key.get());
  write_pem(files.wrong_name, elsewhere.get(), ca.get(), nullptr);
  return files;
}

} // namespace test_tls
