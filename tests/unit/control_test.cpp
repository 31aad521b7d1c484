// SPDX-License-Identifier: MIT
// The control socket: framing, the server's checks and error replies, its
// socket file handling and access rule, and the client.
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "control/client.hpp"
#include "control/protocol.hpp"
#include "control/server.hpp"
#include "control_test_util.hpp"
#include "ubdm/error.hpp"

namespace ubdm::test {
namespace {

using control::ControlClient;
using control::ControlServer;
using control::kMaxFrameBytes;
using control::read_frame;
using control::write_frame;
using nlohmann::json;

// The errno of the ubdm::Error that `fn` throws, or 0; its message in *what.
template <typename Fn>
int error_code_of(Fn&& fn, std::string* what = nullptr) {
  try {
    fn();
  } catch (const Error& e) {
    if (what != nullptr) {
      *what = e.what();
    }
    return e.code();
  }
  return 0;
}

struct SocketPair {
  SocketPair() {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
      std::abort();
    }
    a = fds[0];
    b = fds[1];
  }
  ~SocketPair() {
    close_a();
    close_b();
  }
  void close_a() {
    if (a >= 0) {
      ::close(a);
      a = -1;
    }
  }
  void close_b() {
    if (b >= 0) {
      ::close(b);
      b = -1;
    }
  }
  int a = -1;
  int b = -1;
};

// ---------------------------------------------------------------------------
// Framing

TEST(FrameTest, RoundTripsPayloadsOfAnySize) {
  SocketPair sp;
  write_frame(sp.a, R"({"v":1,"op":"ls"})");
  EXPECT_EQ(read_frame(sp.b), std::optional<std::string>(R"({"v":1,"op":"ls"})"));
  write_frame(sp.a, "");
  EXPECT_EQ(read_frame(sp.b), std::optional<std::string>(""));

  // Larger than a socket buffer: the writer must loop on partial writes and
  // the reader on partial reads.
  std::string big(kMaxFrameBytes, 'x');
  for (std::size_t i = 0; i < big.size(); i += 4099) {
    big[i] = static_cast<char>('a' + (i % 26));
  }
  std::thread writer([&] { write_frame(sp.a, big); });
  const auto got = read_frame(sp.b);
  writer.join();
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(*got, big);
}

TEST(FrameTest, HeaderIsBigEndianLength) {
  SocketPair sp;
  write_frame(sp.a, "abc");
  char buf[16];
  ASSERT_EQ(::recv(sp.b, buf, sizeof(buf), 0), 7);
  EXPECT_EQ(std::string(buf, 7), std::string("\0\0\0\3abc", 7));
}

TEST(FrameTest, OversizedLengthIsRefusedBeforeReadingThePayload) {
  SocketPair sp;
  ASSERT_TRUE(send_all(sp.a, frame_header(static_cast<std::uint32_t>(kMaxFrameBytes) + 1) + "payload"));
  std::string what;
  EXPECT_EQ(error_code_of([&] { (void)read_frame(sp.b); }, &what), EMSGSIZE);
  EXPECT_NE(what.find("exceeds"), std::string::npos) << what;
  // Not a byte of the payload was consumed.
  char buf[16];
  ASSERT_EQ(::recv(sp.b, buf, sizeof(buf), MSG_DONTWAIT), 7);
  EXPECT_EQ(std::string(buf, 7), "payload");
}

TEST(FrameTest, OversizedPayloadIsNotSent) {
  SocketPair sp;
  EXPECT_EQ(error_code_of([&] { write_frame(sp.a, std::string(kMaxFrameBytes + 1, 'x')); }), EMSGSIZE);
  char buf[4];
  EXPECT_EQ(::recv(sp.b, buf, sizeof(buf), MSG_DONTWAIT), -1);
  EXPECT_EQ(errno, EAGAIN);
}

TEST(FrameTest, StreamEndingInTheHeaderIsAProtocolError) {
  SocketPair sp;
  ASSERT_TRUE(send_all(sp.a, std::string("\0\0", 2)));
  sp.close_a();
  EXPECT_EQ(error_code_of([&] { (void)read_frame(sp.b); }), EPROTO);
}

TEST(FrameTest, StreamEndingInThePayloadIsAProtocolError) {
  SocketPair sp;
  ASSERT_TRUE(send_all(sp.a, frame_header(10) + "abc"));
  sp.close_a();
  std::string what;
  EXPECT_EQ(error_code_of([&] { (void)read_frame(sp.b); }, &what), EPROTO);
  EXPECT_NE(what.find("3 of 10"), std::string::npos) << what;
}

TEST(FrameTest, CleanEndOfStreamIsNoFrame) {
  SocketPair sp;
  write_frame(sp.a, "one");
  sp.close_a();
  EXPECT_EQ(read_frame(sp.b), std::optional<std::string>("one"));
  EXPECT_EQ(read_frame(sp.b), std::nullopt);
}

TEST(FrameTest, WritingToAClosedPeerIsConnectionResetNotSigpipe) {
  SocketPair sp;
  sp.close_b();
  EXPECT_EQ(error_code_of([&] { write_frame(sp.a, "x"); }), ECONNRESET);
}

TEST(FrameTest, WorksOnPipesToo) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  write_frame(fds[1], "through a pipe");
  ::close(fds[1]);
  EXPECT_EQ(read_frame(fds[0]), std::optional<std::string>("through a pipe"));
  EXPECT_EQ(read_frame(fds[0]), std::nullopt);
  ::close(fds[0]);
}

TEST(FrameTest, ReplyHelpersCarryVersionAndOk) {
  EXPECT_EQ(control::ok_reply(), (json{{"v", 1}, {"ok", true}}));
  EXPECT_EQ(control::ok_reply(json{{"reply", "x"}}), (json{{"v", 1}, {"ok", true}, {"reply", "x"}}));
  EXPECT_EQ(control::error_reply(ENOENT, "device mp0 does not exist"),
            (json{{"v", 1}, {"ok", false}, {"errno", ENOENT}, {"error", "device mp0 does not exist"}}));
  EXPECT_EQ(control::error_reply(-EBUSY, "busy")["errno"], EBUSY);
  EXPECT_EQ(control::error_reply(0, "?")["errno"], EIO);
}

// ---------------------------------------------------------------------------
// Request handling without a socket

json handle(const std::string& payload, const ControlServer::Handler& h) {
  return ControlServer::handle_request(payload, ControlServer::Caller{}, h);
}

const ControlServer::Handler kEcho = [](const json& req, const ControlServer::Caller&) {
  return json{{"echo", req}};
};

TEST(ControlServerTest, HandlerResultsAreWrappedInAnOkReply) {
  const json r = handle(R"({"v":1,"op":"x","a":[1,2]})", kEcho);
  EXPECT_EQ(r["v"], 1);
  EXPECT_EQ(r["ok"], true);
  EXPECT_EQ(r["echo"]["a"], json({1, 2}));
}

TEST(ControlServerTest, HandlerMayReturnACompleteReplyOrNothing) {
  const json full = handle(R"({"v":1,"op":"x"})", [](const json&, const ControlServer::Caller&) {
    return control::error_reply(EBUSY, "device mp0 is open");
  });
  EXPECT_EQ(full, control::error_reply(EBUSY, "device mp0 is open"));
  const json none = handle(R"({"v":1,"op":"x"})",
                           [](const json&, const ControlServer::Caller&) { return json(); });
  EXPECT_EQ(none, control::ok_reply());
  const json bad = handle(R"({"v":1,"op":"x"})",
                          [](const json&, const ControlServer::Caller&) { return json::array(); });
  EXPECT_EQ(bad["errno"], EIO);
}

TEST(ControlServerTest, ExceptionsBecomeErrorReplies) {
  const auto thrower = [](const json& req, const ControlServer::Caller&) -> json {
    const std::string op = req.at("op").get<std::string>();
    if (op == "error") {
      throw Error(ENOENT, "device mp0 does not exist");
    }
    if (op == "sector") {
      return json{{"sector", req.at("sector").get<std::uint64_t>()}};
    }
    if (op == "std") {
      throw std::runtime_error("out of widgets");
    }
    throw 42;
  };
  EXPECT_EQ(handle(R"({"v":1,"op":"error"})", thrower),
            control::error_reply(ENOENT, "device mp0 does not exist"));
  EXPECT_EQ(handle(R"({"v":1,"op":"sector","sector":"abc"})", thrower),
            control::error_reply(EINVAL, "bad argument: type must be number, but is string"));
  EXPECT_EQ(handle(R"({"v":1,"op":"sector"})", thrower),
            control::error_reply(EINVAL, "bad argument: key 'sector' not found"));
  EXPECT_EQ(handle(R"({"v":1,"op":"std"})", thrower),
            control::error_reply(EIO, "internal error: out of widgets"));
  EXPECT_EQ(handle(R"({"v":1,"op":"other"})", thrower),
            control::error_reply(EIO, "internal error: unknown exception"));
}

struct BadRequest {
  std::string payload;
  std::string message;  // the whole message, or its start if it ends with "..."
};

TEST(ControlServerTest, MalformedRequestsAreRefusedBeforeTheHandler) {
  const std::vector<BadRequest> cases = {
      {"{not json", "malformed request: parse error at line 1, column ..."},
      {"", "malformed request: parse error at line 1, column ..."},
      {std::string("\xff\xfe\x00\x01", 4), "malformed request: ..."},
      {"[1,2]", "malformed request: not a JSON object"},
      {R"("op")", "malformed request: not a JSON object"},
      {R"({"op":"ls"})", "request has no protocol version \"v\"; this daemon speaks 1"},
      {R"({"v":2,"op":"ls"})", "unsupported protocol version 2; this daemon speaks 1"},
      {R"({"v":"1","op":"ls"})", "unsupported protocol version \"1\"; this daemon speaks 1"},
      {R"({"v":1.0,"op":"ls"})", "unsupported protocol version 1.0; this daemon speaks 1"},
      {R"({"v":1})", "request has no \"op\""},
      {R"({"v":1,"op":5})", "request has no \"op\""},
      {R"({"v":1,"op":null})", "request has no \"op\""},
      {std::string(100000, '['), "malformed request: nested deeper than 16 levels"},
      {R"({"v":1,"op":"x","a":)" + std::string(50, '['), "malformed request: nested deeper than 16 levels"},
  };
  bool called = false;
  const ControlServer::Handler h = [&](const json&, const ControlServer::Caller&) {
    called = true;
    return json::object();
  };
  for (const auto& c : cases) {
    const json r = handle(c.payload, h);
    EXPECT_EQ(r["v"], 1) << c.payload.substr(0, 40);
    EXPECT_EQ(r["ok"], false) << c.payload.substr(0, 40);
    EXPECT_EQ(r["errno"], EINVAL) << c.payload.substr(0, 40);
    const std::string msg = r.value("error", "");
    if (c.message.size() > 3 && c.message.compare(c.message.size() - 3, 3, "...") == 0) {
      EXPECT_EQ(msg.substr(0, c.message.size() - 3), c.message.substr(0, c.message.size() - 3));
    } else {
      EXPECT_EQ(msg, c.message);
    }
    // Replies must serialise whatever bytes the message quotes.
    EXPECT_NO_THROW((void)r.dump(-1, ' ', false, json::error_handler_t::replace));
  }
  EXPECT_FALSE(called);
}

// ---------------------------------------------------------------------------
// The server on a socket

// Records requests and answers a few test verbs.
struct FakeDaemon {
  std::mutex mu;
  std::vector<json> requests;
  std::atomic<int> calls{0};

  ControlServer::Handler handler() {
    return [this](const json& req, const ControlServer::Caller& caller) -> json {
      const ControlServer::PeerCredentials& peer = caller.peer;
      ++calls;
      {
        std::lock_guard lock(mu);
        requests.push_back(req);
      }
      const std::string op = req.at("op").get<std::string>();
      if (op == "echo") {
        return json{{"echo", req}};
      }
      if (op == "peer") {
        return json{{"pid", peer.pid}, {"uid", peer.uid}, {"gid", peer.gid}, {"groups", peer.groups}};
      }
      if (op == "fail") {
        throw Error(ENOENT, "device " + req.at("name").get<std::string>() + " does not exist");
      }
      if (op == "sector") {
        return json{{"sector", req.at("sector").get<std::uint64_t>()}};
      }
      if (op == "big") {
        return json{{"blob", std::string(kMaxFrameBytes, 'x')}};
      }
      throw Error(EINVAL, "unknown op \"" + op + "\"");
    };
  }
};

ControlServer::Options options_for(const std::string& path) {
  ControlServer::Options o;
  o.socket_path = path;
  if (::geteuid() != 0) {
    // Not root: admit our own group, or no test could connect.
    o.allowed_group = ::getegid();
  }
  return o;
}

class ControlServerSocketTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path = dir / "control.sock";
    server = std::make_unique<ControlServer>(options_for(path), daemon.handler());
    server->start();
  }

  TempDir dir;
  std::string path;
  FakeDaemon daemon;
  std::unique_ptr<ControlServer> server;
};

TEST_F(ControlServerSocketTest, AnswersACall) {
  ControlClient client(path);
  const json r = client.call({{"op", "echo"}, {"x", 1}});
  EXPECT_EQ(r["ok"], true);
  EXPECT_EQ(r["v"], 1);
  EXPECT_EQ(r["echo"], (json{{"v", 1}, {"op", "echo"}, {"x", 1}}));
  // The connection is kept for the next call.
  EXPECT_EQ(client.call({{"op", "echo"}})["ok"], true);
  EXPECT_EQ(daemon.calls, 2);
}

TEST_F(ControlServerSocketTest, PassesThePeersCredentials) {
  ControlClient client(path);
  const json r = client.call({{"op", "peer"}});
  EXPECT_EQ(r["pid"], ::getpid());
  EXPECT_EQ(r["uid"], ::geteuid());
  EXPECT_EQ(r["gid"], ::getegid());
}

TEST_F(ControlServerSocketTest, HandlerErrorReachesTheClientWithItsErrno) {
  ControlClient client(path);
  std::string what;
  EXPECT_EQ(error_code_of([&] { client.call({{"op", "fail"}, {"name", "mp0"}}); }, &what), ENOENT);
  EXPECT_EQ(what, "device mp0 does not exist");
  // An error reply leaves the connection usable.
  EXPECT_EQ(client.call({{"op", "echo"}})["ok"], true);

  const int fd = raw_connect(path);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(raw_call(fd, R"({"v":1,"op":"fail","name":"mp1"})"),
            (json{{"v", 1}, {"ok", false}, {"errno", ENOENT}, {"error", "device mp1 does not exist"}}));
  ::close(fd);
}

TEST_F(ControlServerSocketTest, MalformedRequestsGetErrorsAndTheConnectionSurvives) {
  const int fd = raw_connect(path);
  ASSERT_GE(fd, 0);
  json r = raw_call(fd, "{\"v\":1,");
  EXPECT_EQ(r["errno"], EINVAL);
  EXPECT_EQ(r["error"].get<std::string>().rfind("malformed request: ", 0), 0U) << r;
  r = raw_call(fd, R"({"v":7,"op":"echo"})");
  EXPECT_EQ(r["error"], "unsupported protocol version 7; this daemon speaks 1");
  r = raw_call(fd, R"({"v":1})");
  EXPECT_EQ(r["error"], "request has no \"op\"");
  r = raw_call(fd, R"({"v":1,"op":"sector","sector":"twelve"})");
  EXPECT_EQ(r, control::error_reply(EINVAL, "bad argument: type must be number, but is string"));
  r = raw_call(fd, std::string("\x00\x01\xff\xfe garbage \x80", 14));
  EXPECT_EQ(r["errno"], EINVAL);
  r = raw_call(fd, R"({"v":1,"op":"sector","sector":12})");
  EXPECT_EQ(r, (json{{"v", 1}, {"ok", true}, {"sector", 12}}));
  ::close(fd);
  // Only the two well-formed requests reached the handler.
  EXPECT_EQ(daemon.calls, 2);
}

TEST_F(ControlServerSocketTest, OversizedFrameGetsAnErrorAndTheConnectionIsClosed) {
  const int fd = raw_connect(path);
  ASSERT_GE(fd, 0);
  // What an HTTP client would send: "GET " reads as a length of ~1.2 GB.
  ASSERT_TRUE(send_all(fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  const auto reply = read_frame(fd);
  ASSERT_TRUE(reply.has_value());
  const json r = json::parse(*reply);
  EXPECT_EQ(r["errno"], EMSGSIZE);
  EXPECT_NE(r["error"].get<std::string>().find("exceeds"), std::string::npos) << r;
  // Then the server closes (end of stream or a reset, as the request was unread).
  std::optional<std::string> next;
  const int code = error_code_of([&] { next = read_frame(fd); });
  EXPECT_TRUE(code == ECONNRESET || (code == 0 && !next.has_value())) << code;
  ::close(fd);
  // The server is unharmed.
  ControlClient client(path);
  EXPECT_EQ(client.call({{"op", "echo"}})["ok"], true);
}

TEST_F(ControlServerSocketTest, TruncatedFrameClosesTheConnection) {
  const int fd = raw_connect(path);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(send_all(fd, frame_header(100) + R"({"v":1,)"));
  ::shutdown(fd, SHUT_WR);
  EXPECT_EQ(read_frame(fd), std::nullopt);
  ::close(fd);
  ControlClient client(path);
  EXPECT_EQ(client.call({{"op", "echo"}})["ok"], true);
  EXPECT_EQ(daemon.calls, 1);
}

TEST_F(ControlServerSocketTest, ReplyTooLargeForAFrameBecomesAnError) {
  ControlClient client(path);
  EXPECT_EQ(error_code_of([&] { client.call({{"op", "big"}}); }), EMSGSIZE);
  EXPECT_EQ(client.call({{"op", "echo"}})["ok"], true);
}

TEST_F(ControlServerSocketTest, ServesManyConnectionsAtOnce) {
  constexpr int kClients = 16;
  constexpr int kCalls = 25;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      ControlClient client(path);
      for (int i = 0; i < kCalls; ++i) {
        const json r = client.call({{"op", "echo"}, {"client", c}, {"i", i}});
        if (r["echo"]["client"] == c && r["echo"]["i"] == i) {
          ++ok;
        }
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(ok, kClients * kCalls);
}

TEST_F(ControlServerSocketTest, ClientThatGoesAwayMidRequestDoesNotDisturbOthers) {
  for (int i = 0; i < 50; ++i) {
    const int fd = raw_connect(path);
    ASSERT_GE(fd, 0);
    if (i % 2 == 0) {
      send_all(fd, frame_header(40) + "{");
    }
    ::close(fd);
  }
  ControlClient client(path);
  EXPECT_EQ(client.call({{"op", "echo"}})["ok"], true);
}

TEST(ControlServerLimitTest, RefusesConnectionsAboveTheLimitWithEagain) {
  TempDir dir;
  FakeDaemon daemon;
  auto opts = options_for(dir / "s");
  opts.max_connections = 2;
  ControlServer server(opts, daemon.handler());
  server.start();

  auto first = std::make_unique<ControlClient>(dir / "s");
  ControlClient second(dir / "s");
  ASSERT_EQ(first->call({{"op", "echo"}})["ok"], true);
  ASSERT_EQ(second.call({{"op", "echo"}})["ok"], true);

  ControlClient third(dir / "s");
  std::string what;
  EXPECT_EQ(error_code_of([&] { third.call({{"op", "echo"}}); }, &what), EAGAIN);
  EXPECT_EQ(what, "ubdmd is serving its limit of 2 connections; try again");

  // A slot frees when a client leaves; the server notices asynchronously.
  first.reset();
  bool admitted = false;
  for (int i = 0; i < 200 && !admitted; ++i) {
    admitted = error_code_of([&] { third.call({{"op", "echo"}}); }) == 0;
    if (!admitted) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  EXPECT_TRUE(admitted);
}

// ---------------------------------------------------------------------------
// The socket file

mode_t file_mode(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    return 0;
  }
  return st.st_mode;
}

TEST(ControlServerFileTest, SocketIsRootOnlyWithoutAGroup) {
  TempDir dir;
  ControlServer::Options o;
  o.socket_path = dir / "control.sock";
  ControlServer server(o, kEcho);
  const mode_t mode = file_mode(o.socket_path);
  EXPECT_TRUE(S_ISSOCK(mode));
  EXPECT_EQ(mode & 07777, 0600U);
}

TEST(ControlServerFileTest, SocketIsGroupAccessibleWithAGroup) {
  TempDir dir;
  ControlServer::Options o;
  o.socket_path = dir / "control.sock";
  o.allowed_group = ::getegid();
  ControlServer server(o, kEcho);
  struct stat st {};
  ASSERT_EQ(::stat(o.socket_path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0660U);
  EXPECT_EQ(st.st_gid, ::getegid());
}

TEST(ControlServerFileTest, CreatesTheParentDirectory) {
  TempDir dir;
  ControlServer::Options o;
  o.socket_path = dir / "run/ubdm/control.sock";
  ControlServer server(o, kEcho);
  EXPECT_EQ(file_mode(dir / "run/ubdm") & 07777, 0755U);
  EXPECT_TRUE(S_ISDIR(file_mode(dir / "run/ubdm")));
  EXPECT_TRUE(S_ISSOCK(file_mode(o.socket_path)));
}

TEST(ControlServerFileTest, ReplacesAStaleSocket) {
  TempDir dir;
  const std::string path = dir / "control.sock";
  {
    // A socket file nobody listens on: what a crashed daemon leaves.
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
    ASSERT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)), 0);
    ::close(fd);
  }
  ASSERT_EQ(raw_connect(path), -ECONNREFUSED);
  ControlServer server(options_for(path), kEcho);
  server.start();
  ControlClient client(path);
  EXPECT_EQ(client.call({{"op", "x"}})["ok"], true);
}

TEST(ControlServerFileTest, SecondServerOnTheSamePathIsRefused) {
  TempDir dir;
  const std::string path = dir / "control.sock";
  ControlServer first(options_for(path), kEcho);
  first.start();
  std::string what;
  EXPECT_EQ(error_code_of([&] { ControlServer second(options_for(path), kEcho); }, &what), EADDRINUSE);
  EXPECT_EQ(what, "another ubdmd is already listening on " + path);
  // The first is untouched.
  ControlClient client(path);
  EXPECT_EQ(client.call({{"op", "x"}})["ok"], true);
}

TEST(ControlServerFileTest, ForeignListenerOnThePathIsRefused) {
  TempDir dir;
  const std::string path = dir / "control.sock";
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  std::string what;
  EXPECT_EQ(error_code_of([&] { ControlServer s(options_for(path), kEcho); }, &what), EADDRINUSE);
  EXPECT_EQ(what, "another ubdmd is already listening on " + path);
  EXPECT_TRUE(S_ISSOCK(file_mode(path)));
  ::close(fd);
}

TEST(ControlServerFileTest, RefusesToReplaceSomethingThatIsNotASocket) {
  TempDir dir;
  const std::string path = dir / "control.sock";
  std::ofstream(path) << "precious";
  std::string what;
  EXPECT_EQ(error_code_of([&] { ControlServer s(options_for(path), kEcho); }, &what), EEXIST);
  EXPECT_EQ(what, path + " exists and is not a socket; not replacing it");
  EXPECT_TRUE(S_ISREG(file_mode(path)));
}

TEST(ControlServerFileTest, RefusesAPathTooLongForASocket) {
  const std::string path = "/tmp/" + std::string(120, 'x');
  EXPECT_EQ(error_code_of([&] { ControlServer s(options_for(path), kEcho); }), ENAMETOOLONG);
}

TEST(ControlServerFileTest, StopClosesIdleConnectionsAndRemovesTheSocket) {
  TempDir dir;
  const std::string path = dir / "control.sock";
  ControlServer server(options_for(path), kEcho);
  server.start();
  const int fd = raw_connect(path);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(raw_call(fd, R"({"v":1,"op":"x"})")["ok"], true);
  // The connection's thread is now blocked reading the next request.
  const auto t0 = std::chrono::steady_clock::now();
  server.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  EXPECT_EQ(read_frame(fd), std::nullopt);
  ::close(fd);
  EXPECT_EQ(file_mode(path), 0U);
  EXPECT_EQ(raw_connect(path), -ENOENT);
  server.stop();  // idempotent

  // The path is free for the next daemon.
  ControlServer next(options_for(path), kEcho);
  next.start();
  ControlClient client(path);
  EXPECT_EQ(client.call({{"op", "x"}})["ok"], true);
}

TEST(ControlServerFileTest, StopWithoutStart) {
  TempDir dir;
  const std::string path = dir / "control.sock";
  { ControlServer server(options_for(path), kEcho); }
  EXPECT_EQ(file_mode(path), 0U);
}

// ---------------------------------------------------------------------------
// Who may connect

TEST(ControlPeerTest, AccessRule) {
  using Peer = ControlServer::PeerCredentials;
  const Peer root{1, 0, 0, {}};
  const Peer user{2, 1000, 1000, {24, 27}};
  const Peer primary{3, 1000, 600, {}};
  EXPECT_TRUE(control::peer_allowed(root, std::nullopt));
  EXPECT_TRUE(control::peer_allowed(root, 600));
  EXPECT_FALSE(control::peer_allowed(user, std::nullopt));
  EXPECT_FALSE(control::peer_allowed(user, 600));
  EXPECT_TRUE(control::peer_allowed(user, 27));
  EXPECT_TRUE(control::peer_allowed(primary, 600));
  EXPECT_FALSE(control::peer_allowed(primary, std::nullopt));
  // uid 0 with any gid is root; gid 0 alone is not.
  EXPECT_TRUE(control::peer_allowed(Peer{4, 0, 1000, {}}, std::nullopt));
  EXPECT_FALSE(control::peer_allowed(Peer{5, 1000, 0, {0}}, std::nullopt));
}

TEST(ControlPeerTest, CredentialsOfASocketPair) {
  SocketPair sp;
  const auto peer = control::peer_credentials(sp.a);
  EXPECT_EQ(peer.pid, ::getpid());
  EXPECT_EQ(peer.uid, ::geteuid());
  EXPECT_EQ(peer.gid, ::getegid());
  std::vector<gid_t> mine(static_cast<std::size_t>(::getgroups(0, nullptr)));
  mine.resize(static_cast<std::size_t>(::getgroups(static_cast<int>(mine.size()), mine.data())));
  auto got = peer.groups;
  std::sort(got.begin(), got.end());
  std::sort(mine.begin(), mine.end());
  EXPECT_EQ(got, mine);
}

// Runs the built ubdmsetup as uid/gid 65534 (with the supplementary groups
// `groups`): `ubdmsetup --socket PATH --json ls`. The child only calls
// syscalls between fork and exec: this process has other threads (servers,
// sanitizer helpers), and anything that takes a lock after fork() can
// deadlock on a lock one of them held.
struct NobodyRun {
  int status = -1;     // exit status, or 200 for a signal
  std::string stderr_text;
};

NobodyRun as_nobody(const std::vector<gid_t>& groups, const std::string& path) {
  std::vector<std::string> argv_s{UBDM_UBDMSETUP_PATH, "--socket", path, "--json", "ls"};
  std::vector<char*> argv;
  for (auto& a : argv_s) {
    argv.push_back(a.data());
  }
  argv.push_back(nullptr);
  char* envp[] = {nullptr};
  int err_pipe[2];
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    return {};
  }
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int null = ::open("/dev/null", O_WRONLY);
    if (::setgroups(groups.size(), groups.data()) != 0 || ::setgid(65534) != 0 || ::setuid(65534) != 0 ||
        ::dup2(err_pipe[1], STDERR_FILENO) < 0 || ::dup2(null, STDOUT_FILENO) < 0) {
      ::_exit(100);
    }
    ::execve(argv[0], argv.data(), envp);
    ::_exit(101);
  }
  ::close(err_pipe[1]);
  NobodyRun r;
  char buf[512];
  ssize_t n;
  while ((n = ::read(err_pipe[0], buf, sizeof(buf))) > 0) {
    r.stderr_text.append(buf, static_cast<std::size_t>(n));
  }
  ::close(err_pipe[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 200;
  return r;
}

TEST(ControlPeerTest, NonRootPeerIsRefusedWithoutAGroup) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "needs root to run a client as another user";
  }
  TempDir dir;
  ::chmod(dir.path().c_str(), 0755);
  const std::string path = dir / "control.sock";
  ControlServer server(options_for(path), kEcho);
  server.start();
  // Open the file so that only the server's own check stands in the way.
  ASSERT_EQ(::chmod(path.c_str(), 0666), 0);
  const NobodyRun r = as_nobody({}, path);
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.stderr_text, "ubdmsetup: ls: permission denied: ubdmd admits root only\n");
}

TEST(ControlPeerTest, MemberOfTheConfiguredGroupIsAdmitted) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "needs root to run a client as another user";
  }
  TempDir dir;
  ::chmod(dir.path().c_str(), 0755);
  const std::string path = dir / "control.sock";
  auto opts = options_for(path);
  opts.allowed_group = 54321;
  ControlServer server(opts, kEcho);
  server.start();
  ASSERT_EQ(::chmod(path.c_str(), 0666), 0);
  const NobodyRun member = as_nobody({54321}, path);
  EXPECT_EQ(member.status, 0) << member.stderr_text;
  const NobodyRun other = as_nobody({}, path);
  EXPECT_EQ(other.status, 1);
  EXPECT_EQ(other.stderr_text, "ubdmsetup: ls: permission denied: ubdmd admits root and group 54321\n");
  // Through the file's own permissions (0660, group 54321) as well.
  ASSERT_EQ(::chmod(path.c_str(), 0660), 0);
  EXPECT_EQ(as_nobody({54321}, path).status, 0);
}

// ---------------------------------------------------------------------------
// The client

TEST(ControlClientTest, NoDaemonGivesAHelpfulMessage) {
  TempDir dir;
  const std::string path = dir / "control.sock";
  ControlClient client(path);
  std::string what;
  EXPECT_EQ(error_code_of([&] { client.call({{"op", "ls"}}); }, &what), ENOENT);
  EXPECT_EQ(what, "cannot connect to ubdmd at " + path + ": No such file or directory (is ubdmd running?)");

  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)), 0);
  ::close(fd);
  EXPECT_EQ(error_code_of([&] { client.call({{"op", "ls"}}); }, &what), ECONNREFUSED);
  EXPECT_EQ(what, "cannot connect to ubdmd at " + path + ": Connection refused (is ubdmd running?)");
}

TEST(ControlClientTest, PermissionDeniedOnTheSocketFile) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "needs root to run a client as another user";
  }
  TempDir dir;
  ::chmod(dir.path().c_str(), 0755);
  const std::string path = dir / "control.sock";
  ControlServer server(options_for(path), kEcho);
  server.start();
  const NobodyRun r = as_nobody({}, path);
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.stderr_text, "ubdmsetup: ls: cannot connect to ubdmd at " + path +
                               ": permission denied (the control socket admits root only)\n");
}

// A one-shot server answering whatever bytes it is given.
class ScriptedServer {
 public:
  ScriptedServer(const std::string& path, std::string answer, bool frame_it) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
    if (::bind(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0 || ::listen(fd_, 4) != 0) {
      std::abort();
    }
    thread_ = std::thread([this, answer = std::move(answer), frame_it] {
      const int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) {
        return;
      }
      try {
        (void)read_frame(c);
        if (frame_it) {
          write_frame(c, answer);
        } else {
          send_all(c, answer);
        }
      } catch (...) {
      }
      ::close(c);
    });
  }
  ~ScriptedServer() {
    thread_.join();
    ::close(fd_);
  }
  ScriptedServer(const ScriptedServer&) = delete;
  ScriptedServer& operator=(const ScriptedServer&) = delete;

 private:
  int fd_ = -1;
  std::thread thread_;
};

TEST(ControlClientTest, InvalidRepliesAreProtocolErrors) {
  struct Case {
    std::string answer;
    bool framed;
  };
  const std::vector<Case> cases = {
      {"", false},                      // closed without a reply
      {std::string("\0\0", 2), false},  // half a header
      {frame_header(50) + "{", false},  // half a payload
      {"not json", true},               //
      {"[1]", true},                    // not an object
      {R"({"v":1})", true},             // no "ok"
      {R"({"v":1,"ok":"yes"})", true},  // "ok" not a boolean
  };
  for (const auto& c : cases) {
    TempDir dir;
    const std::string path = dir / "s";
    ScriptedServer server(path, c.answer, c.framed);
    ControlClient client(path);
    EXPECT_EQ(error_code_of([&] { client.call({{"op", "ls"}}); }), EPROTO) << c.answer;
  }
}

TEST(ControlClientTest, ErrorReplyWithoutDetailsStillFails) {
  TempDir dir;
  const std::string path = dir / "s";
  ScriptedServer server(path, R"({"v":1,"ok":false})", true);
  ControlClient client(path);
  std::string what;
  EXPECT_EQ(error_code_of([&] { client.call({{"op", "ls"}}); }, &what), EIO);
  EXPECT_EQ(what, "ubdmd reported an error without a message");
}

TEST(ControlClientTest, ReconnectsAfterTheDaemonRestarts) {
  TempDir dir;
  const std::string path = dir / "control.sock";
  ControlClient client(path);
  {
    ControlServer server(options_for(path), kEcho);
    server.start();
    EXPECT_EQ(client.call({{"op", "x"}})["ok"], true);
  }
  ControlServer server(options_for(path), kEcho);
  server.start();
  // The old connection is dead: that call fails, the next one reconnects.
  if (error_code_of([&] { client.call({{"op", "x"}}); }) != 0) {
    EXPECT_EQ(client.call({{"op", "x"}})["ok"], true);
  }
}

TEST(ControlClientTest, RequestMustBeAnObject) {
  ControlClient client("/nonexistent/socket");
  EXPECT_EQ(error_code_of([&] { client.call(json::array()); }), EINVAL);
}

}  // namespace
}  // namespace ubdm::test
