#include <gtest/gtest.h>

#include "response_writer.hpp"

using namespace kino;

TEST(ResponseWriter, StatusesWithoutBody) {
  EXPECT_TRUE(status_forbids_body(204));
  EXPECT_TRUE(status_forbids_body(304));
  EXPECT_TRUE(status_forbids_body(101));
  EXPECT_FALSE(status_forbids_body(200));
}
