#include "net/tls_context.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <new>
#include <sstream>

namespace kino {

namespace {

// Mozilla's "intermediate" configuration (v5.7), for TLS 1.2; TLS 1.3's
// suites are OpenSSL's defaults, all of them strong.
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305";

bool inline_pem(const std::string& source) { return source.find("-----BEGIN") != std::string::npos; }

// "tls cert /etc/kino/cert.pem" or "tls key (inline PEM)".
std::string where(const char* part, const std::string& source) {
  return std::string("tls ") + part + " " + (inline_pem(source) ? "(inline PEM)" : source);
}

std::string pem_of(const char* part, const std::string& source) {
  if (inline_pem(source)) return source;
  std::ifstream in(source, std::ios::binary);
  if (!in) throw TlsError(where(part, source) + ": cannot read it: " + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  if (!in.good() && !in.eof()) throw TlsError(where(part, source) + ": cannot read it");
  return text.str();
}

// OpenSSL's reason for the oldest error it queued, then a clean queue.
std::string openssl_reason(const char* fallback) {
  unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return fallback;
  char text[256];
  ERR_error_string_n(code, text, sizeof text);
  return text;
}

// PEM text as an OpenSSL memory BIO, freed with it.
class Bio {
 public:
  explicit Bio(const std::string& text) : bio_(BIO_new_mem_buf(text.data(), static_cast<int>(text.size()))) {
    if (!bio_) throw std::bad_alloc();
  }
  ~Bio() { BIO_free(bio_); }
  Bio(const Bio&) = delete;
  Bio& operator=(const Bio&) = delete;
  BIO* get() const noexcept { return bio_; }

 private:
  BIO* bio_;
};

// The end of the PEM text: what reading one more certificate says then.
bool at_end_of_pem() {
  unsigned long last = ERR_peek_last_error();
  if (ERR_GET_LIB(last) != ERR_LIB_PEM || ERR_GET_REASON(last) != PEM_R_NO_START_LINE) return false;
  ERR_clear_error();
  return true;
}

// A key file asking for a passphrase fails here instead of prompting on
// the server's terminal.
int no_passphrase(char*, int, int, void*) { return 0; }

// The leaf, then its intermediates, as a fullchain.pem holds them.
bool use_certificate_chain(SSL_CTX* ctx, const std::string& pem) {
  Bio bio(pem);
  X509* leaf = PEM_read_bio_X509_AUX(bio.get(), nullptr, no_passphrase, nullptr);
  if (!leaf) return false;
  bool used = SSL_CTX_use_certificate(ctx, leaf) == 1;
  X509_free(leaf);
  if (!used) return false;
  while (X509* intermediate = PEM_read_bio_X509(bio.get(), nullptr, no_passphrase, nullptr)) {
    if (SSL_CTX_add0_chain_cert(ctx, intermediate) != 1) {  // owns it on success only
      X509_free(intermediate);
      return false;
    }
  }
  return at_end_of_pem();
}

// Every certificate of `pem` becomes a CA client certificates may be
// signed by, and is named to clients in the handshake.
bool trust_client_cas(SSL_CTX* ctx, const std::string& pem) {
  Bio bio(pem);
  int count = 0;
  while (X509* ca = PEM_read_bio_X509(bio.get(), nullptr, no_passphrase, nullptr)) {
    bool added =
        X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), ca) == 1 && SSL_CTX_add_client_CA(ctx, ca) == 1;
    X509_free(ca);
    if (!added) return false;
    ++count;
  }
  return count > 0 && at_end_of_pem();
}

int select_alpn(SSL*, const unsigned char** out, unsigned char* out_len, const unsigned char* offered,
                unsigned int offered_len, void*) {
  unsigned char* chosen = nullptr;
  const auto* ours = reinterpret_cast<const unsigned char*>(kAlpnProtocols.data());
  if (SSL_select_next_proto(&chosen, out_len, ours, static_cast<unsigned>(kAlpnProtocols.size()), offered,
                            offered_len) != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK;  // nothing in common: go on without ALPN, as HTTP/1.1
  *out = chosen;
  return SSL_TLSEXT_ERR_OK;
}

}  // namespace

TlsContext::TlsContext(const TlsSources& sources) : context_(asio::ssl::context::tls_server) {
  SSL_CTX* ctx = context_.native_handle();
  ERR_clear_error();
  if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) || !SSL_CTX_set_cipher_list(ctx, kTls12Ciphers))
    throw TlsError("tls: cannot set the protocol policy: " + openssl_reason("unknown error"));
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_dh_auto(ctx, 1);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  static const unsigned char kSessionContext[] = "kino";
  SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof kSessionContext - 1);
  SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
  SSL_CTX_set_alpn_select_cb(ctx, select_alpn, nullptr);

  std::string cert = pem_of("cert", sources.cert);
  if (!use_certificate_chain(ctx, cert))
    throw TlsError(where("cert", sources.cert) +
                   ": not a usable PEM certificate: " + openssl_reason("no certificate"));
  std::string key = pem_of("key", sources.key);
  Bio key_bio(key);
  EVP_PKEY* pkey = PEM_read_bio_PrivateKey(key_bio.get(), nullptr, no_passphrase, nullptr);
  if (!pkey)
    throw TlsError(where("key", sources.key) + ": not a usable PEM private key: " + openssl_reason("no key"));
  bool used = SSL_CTX_use_PrivateKey(ctx, pkey) == 1;
  EVP_PKEY_free(pkey);
  if (!used || !SSL_CTX_check_private_key(ctx))
    throw TlsError(where("key", sources.key) + ": does not match " + where("cert", sources.cert) + ": " +
                   openssl_reason("key values mismatch"));
  if (!sources.ca.empty()) {
    std::string ca = pem_of("ca", sources.ca);
    if (!trust_client_cas(ctx, ca))
      throw TlsError(where("ca", sources.ca) +
                     ": not a usable PEM certificate: " + openssl_reason("no certificate"));
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  }
}

}  // namespace kino
