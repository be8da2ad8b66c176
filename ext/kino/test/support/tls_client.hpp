// TLS for tests of a real server: self-signed certificates made in
// memory, and a blocking OpenSSL client over a loopback socket that
// verifies the server against one of them. Every read has a deadline (a
// receive timeout), so a server that never answers fails the test.
#pragma once

#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>

#include "test_client.hpp"

namespace kino::test {

struct CertificatePem {
  std::string cert;
  std::string key;
};

namespace detail {
inline std::string bio_text(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(n));
  BIO_free(bio);
  return out;
}
}  // namespace detail

// An EC P-256 certificate for localhost and 127.0.0.1, signed by its own
// key; `common_name` tells two of them apart.
inline CertificatePem self_signed(const std::string& common_name = "localhost") {
  static std::atomic<long> serial{1};
  EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  X509* x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), serial.fetch_add(1));
  X509_gmtime_adj(X509_getm_notBefore(x), -60);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  X509_set_pubkey(x, key);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1, 0);
  X509_set_issuer_name(x, name);
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, x, x, nullptr, nullptr, 0);
  for (auto [nid, value] : {std::pair{NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1"},
                            std::pair{NID_basic_constraints, "critical,CA:TRUE"}}) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, nid, value);
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
  }
  X509_sign(x, key, EVP_sha256());
  BIO* cert_bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(cert_bio, x);
  BIO* key_bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(key_bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  X509_free(x);
  EVP_PKEY_free(key);
  return {detail::bio_text(cert_bio), detail::bio_text(key_bio)};
}

inline void write_file(const std::string& path, std::string_view text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

// One TLS connection to 127.0.0.1:`port` that trusts `trusted` (a PEM
// certificate) alone and checks the name localhost.
class TlsClient {
 public:
  struct Options {
    int max_version = 0;  // e.g. TLS1_1_VERSION; 0: the library's
    const CertificatePem* client_cert = nullptr;
  };

  TlsClient(uint16_t port, const std::string& trusted) : TlsClient(port, trusted, Options{}) {}
  TlsClient(uint16_t port, const std::string& trusted, Options options) {
    // OpenSSL writes to the socket with write(2): a server that closed
    // must fail the write, not kill the test process.
    static const bool sigpipe_ignored = std::signal(SIGPIPE, SIG_IGN) != SIG_ERR;
    (void)sigpipe_ignored;
    ctx_ = SSL_CTX_new(TLS_client_method());
    if (options.max_version) {
      SSL_CTX_set_min_proto_version(ctx_, TLS1_VERSION);
      SSL_CTX_set_max_proto_version(ctx_, options.max_version);
      SSL_CTX_set_security_level(ctx_, 0);  // let the old protocol be offered at all
    }
    BIO* bio = BIO_new_mem_buf(trusted.data(), static_cast<int>(trusted.size()));
    X509* ca = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx_), ca);
    X509_free(ca);
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
    if (options.client_cert) use_client_certificate(*options.client_cert);
    static const unsigned char kAlpn[] = "\x02h2\x08http/1.1";
    SSL_CTX_set_alpn_protos(ctx_, kAlpn, sizeof kAlpn - 1);
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr = Client::loopback(port);
    timeval tv{static_cast<time_t>(Client::kReadDeadline.count()), 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return;
    ssl_ = SSL_new(ctx_);
    SSL_set_fd(ssl_, fd_);
    SSL_set1_host(ssl_, "localhost");
    SSL_set_tlsext_host_name(ssl_, "localhost");
    handshake_ok_ = SSL_connect(ssl_) == 1;
    if (!handshake_ok_) handshake_error_ = error_text();
  }
  ~TlsClient() {
    if (ssl_) SSL_free(ssl_);
    if (fd_ >= 0) ::close(fd_);
    SSL_CTX_free(ctx_);
  }
  TlsClient(const TlsClient&) = delete;
  TlsClient& operator=(const TlsClient&) = delete;

  bool handshake_ok() const { return handshake_ok_; }
  const std::string& handshake_error() const { return handshake_error_; }
  std::string version() const { return SSL_get_version(ssl_); }
  std::string alpn() const {
    const unsigned char* data = nullptr;
    unsigned len = 0;
    SSL_get0_alpn_selected(ssl_, &data, &len);
    return {reinterpret_cast<const char*>(data), len};
  }
  // The CN of the certificate the server presented.
  std::string peer_common_name() const {
    X509* peer = SSL_get1_peer_certificate(ssl_);
    if (!peer) return "";
    char cn[256] = {0};
    X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, cn, sizeof cn);
    X509_free(peer);
    return cn;
  }

  // Writes `data` as TLS records of at most `record` bytes each (a large
  // body arrives in many records, a small one split mid-request).
  bool send(std::string_view data, size_t record = 16384) {
    while (!data.empty()) {
      size_t n = data.size() < record ? data.size() : record;
      if (SSL_write(ssl_, data.data(), static_cast<int>(n)) <= 0) return false;
      data.remove_prefix(n);
    }
    return true;
  }

  // Reads until one whole response (by content-length) is here; what is
  // read past it stays for the next call.
  std::string read_response() {
    for (;;) {
      size_t end = in_.find("\r\n\r\n");
      if (end != std::string::npos) {
        ParsedResponse head = parse_response(in_.substr(0, end + 4));
        size_t total = end + 4;
        if (auto cl = head.get("content-length")) total += std::stoul(*cl);
        if (in_.size() >= total) {
          std::string out = in_.substr(0, total);
          in_.erase(0, total);
          return out;
        }
      }
      if (read_some() <= 0) return std::exchange(in_, "");
    }
  }

  // Reads until the server ends the connection: "close_notify" when it
  // ended TLS cleanly, "eof" when the TCP stream ended without it, else
  // OpenSSL's reason.
  std::string read_to_end(std::string& out) {
    for (;;) {
      int n = read_some();
      if (n > 0) continue;
      out = std::exchange(in_, "");
      int err = SSL_get_error(ssl_, n);
      if (err == SSL_ERROR_ZERO_RETURN) return "close_notify";
      if (err == SSL_ERROR_SYSCALL ||
          ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
        ERR_clear_error();
        return "eof";
      }
      return error_text();
    }
  }

  // close_notify, then the socket: a client that leaves politely.
  void leave() {
    SSL_shutdown(ssl_);
    ::shutdown(fd_, SHUT_WR);
  }

  int fd() const { return fd_; }

 private:
  int read_some() {
    char buf[16384];
    int n = SSL_read(ssl_, buf, sizeof buf);
    if (n > 0) in_.append(buf, static_cast<size_t>(n));
    return n;
  }

  void use_client_certificate(const CertificatePem& pem) {
    BIO* cert = BIO_new_mem_buf(pem.cert.data(), static_cast<int>(pem.cert.size()));
    X509* x = PEM_read_bio_X509(cert, nullptr, nullptr, nullptr);
    SSL_CTX_use_certificate(ctx_, x);
    X509_free(x);
    BIO_free(cert);
    BIO* key = BIO_new_mem_buf(pem.key.data(), static_cast<int>(pem.key.size()));
    EVP_PKEY* k = PEM_read_bio_PrivateKey(key, nullptr, nullptr, nullptr);
    SSL_CTX_use_PrivateKey(ctx_, k);
    EVP_PKEY_free(k);
    BIO_free(key);
  }

  static std::string error_text() {
    unsigned long code = ERR_get_error();
    ERR_clear_error();
    char text[256] = "no OpenSSL error";
    if (code) ERR_error_string_n(code, text, sizeof text);
    return text;
  }

  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  int fd_ = -1;
  bool handshake_ok_ = false;
  std::string handshake_error_;
  std::string in_;
};

}  // namespace kino::test
