#include "handoff/request_ctx.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "http1/responder.hpp"
#include "test_sink.hpp"

using namespace kino;
using test::parse_response;
using test::RecordingSink;

TEST(RequestCtx, RefcountFollowsIntrusivePtr) {
  RequestRef a(new RequestCtx());
  EXPECT_EQ(a->use_count(), 1u);
  {
    RequestRef b = a;
    EXPECT_EQ(a->use_count(), 2u);
  }
  EXPECT_EQ(a->use_count(), 1u);
  RequestCtx* raw = a.detach();
  EXPECT_EQ(raw->use_count(), 1u);
  RequestRef adopted(raw, false);
  EXPECT_EQ(adopted->use_count(), 1u);
}

TEST(RequestCtx, ClaimOnce) {
  RequestCtx r;
  EXPECT_FALSE(r.claimed());
  EXPECT_TRUE(r.claim());
  EXPECT_TRUE(r.claimed());
  EXPECT_FALSE(r.claim());
}

TEST(RequestCtx, ClaimOnceAcrossThreads) {
  RequestCtx r;
  std::atomic<int> wins{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([&] {
      if (r.claim()) wins.fetch_add(1);
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(wins.load(), 1);
}

TEST(RequestCtx, ReleasedUnansweredAnswers500) {
  auto sink = std::make_shared<RecordingSink>();
  {
    RequestRef req(new RequestCtx());
    req->keep_alive = true;
    req->sink = sink;
    RequestRef other = req;  // only the last reference answers
  }
  auto sent = sink->sent();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_TRUE(sent[0].last);
  auto r = parse_response(sent[0].bytes);
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.status_line, "HTTP/1.1 500 Internal Server Error");
  EXPECT_EQ(r.get("content-length"), std::to_string(r.body.size()));
  EXPECT_FALSE(r.body.empty());
  auto logs = sink->logs();
  ASSERT_EQ(logs.size(), 1u);
  EXPECT_NE(logs[0].find("without a response"), std::string::npos) << logs[0];
  EXPECT_EQ(sink.use_count(), 1) << "the request let go of the sink";
}

TEST(RequestCtx, ReleasedAfterAnswerSendsNothingMore) {
  auto sink = std::make_shared<RecordingSink>();
  {
    RequestRef req(new RequestCtx());
    req->keep_alive = true;
    req->sink = sink;
    std::string_view body[] = {"ok"};
    ASSERT_TRUE(respond(*req, 200, {}, body));
  }
  EXPECT_EQ(sink->sent().size(), 1u);
  EXPECT_EQ(parse_response(sink->wire()).status, 200);
  EXPECT_TRUE(sink->logs().empty());
}

TEST(RequestCtx, ReleasedMidStreamIsAborted) {
  auto sink = std::make_shared<RecordingSink>();
  {
    RequestRef req(new RequestCtx());
    req->keep_alive = true;
    req->sink = sink;
    ASSERT_TRUE(start_response(*req, 200, {}));
    ASSERT_TRUE(write_body(*req, "part"));
  }
  auto sent = sink->sent();
  ASSERT_FALSE(sent.empty());
  EXPECT_EQ(sink->lasts(), 1u);
  EXPECT_TRUE(sent.back().last);
  EXPECT_FALSE(sent.back().keep_alive);
  EXPECT_EQ(sink->wire().find("0\r\n\r\n"), std::string::npos);
}

TEST(RequestCtx, ReleasedWithoutSinkIsSilent) {
  RequestRef req(new RequestCtx());
  req.reset();
  SUCCEED();
}
