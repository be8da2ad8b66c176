// TlsContext: what a certificate and key become, and how a bad one is
// refused (the part, the file and OpenSSL's reason in the message).
#include "net/tls_context.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>

#include "support/tls_client.hpp"

namespace kino {
namespace {

using test::CertificatePem;
using test::self_signed;
using test::write_file;

class TlsContextTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("kino-tls-context-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string file(const std::string& name, std::string_view text) {
    std::string path = (dir_ / name).string();
    write_file(path, text);
    return path;
  }

  // The message TlsContext refuses `sources` with ("" when it loads them).
  static std::string refusal(const TlsSources& sources) {
    try {
      TlsContext context(sources);
    } catch (const TlsError& e) {
      return e.what();
    }
    return "";
  }

  std::filesystem::path dir_;
  CertificatePem pem_ = self_signed();
};

TEST_F(TlsContextTest, LoadsFilesAndInlinePem) {
  EXPECT_EQ(refusal({file("cert.pem", pem_.cert), file("key.pem", pem_.key), ""}), "");
  EXPECT_EQ(refusal({pem_.cert, pem_.key, ""}), "");
  EXPECT_EQ(refusal({pem_.cert, pem_.key, pem_.cert}), "");
}

TEST_F(TlsContextTest, NamesAMissingFile) {
  std::string missing = (dir_ / "nope.pem").string();
  EXPECT_EQ(refusal({missing, pem_.key, ""}),
            "tls cert " + missing + ": cannot read it: No such file or directory");
  EXPECT_EQ(refusal({pem_.cert, missing, ""}),
            "tls key " + missing + ": cannot read it: No such file or directory");
}

TEST_F(TlsContextTest, NamesAFileThatIsNotPem) {
  std::string cert = file("cert.pem", "hello\n");
  std::string why = refusal({cert, pem_.key, ""});
  EXPECT_EQ(why.rfind("tls cert " + cert + ": not a usable PEM certificate: ", 0), 0u) << why;
  EXPECT_NE(why.find("no start line"), std::string::npos) << why;

  std::string key = file("key.pem", "-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n");
  why = refusal({pem_.cert, key, ""});
  EXPECT_EQ(why.rfind("tls key " + key + ": not a usable PEM private key: ", 0), 0u) << why;
}

TEST_F(TlsContextTest, NamesAKeyThatDoesNotMatchTheCertificate) {
  std::string cert = file("cert.pem", pem_.cert);
  std::string other = file("other-key.pem", self_signed("other").key);
  std::string why = refusal({cert, other, ""});
  EXPECT_EQ(why.rfind("tls key " + other + ": does not match tls cert " + cert + ": ", 0), 0u) << why;
  EXPECT_NE(why.find("key values mismatch"), std::string::npos) << why;
}

TEST_F(TlsContextTest, SaysInlinePemWhereThereIsNoFile) {
  std::string why = refusal({pem_.cert, self_signed("other").key, ""});
  EXPECT_EQ(why.rfind("tls key (inline PEM): does not match tls cert (inline PEM): ", 0), 0u) << why;
}

TEST_F(TlsContextTest, OffersHttp11AloneThroughAlpn) {
  EXPECT_EQ(kAlpnProtocols, std::string_view("\x08http/1.1", 9));
}

TEST_F(TlsContextTest, AReloadThatFailsKeepsTheCurrentContext) {
  std::string cert = file("cert.pem", pem_.cert);
  std::string key = file("key.pem", pem_.key);
  TlsContextHolder holder({cert, key, ""});
  auto before = holder.current();
  write_file(cert, "garbage\n");
  EXPECT_THROW(holder.reload(), TlsError);
  EXPECT_EQ(holder.current(), before);
  CertificatePem next = self_signed("next");
  write_file(cert, next.cert);
  write_file(key, next.key);
  holder.reload();
  EXPECT_NE(holder.current(), before);
}

}  // namespace
}  // namespace kino
