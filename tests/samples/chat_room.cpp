// The chat sample's room (samples/chat/room.cpp) without any I/O: the envelopes it
// answers with, and to whom. The wire itself is tested from outside by chat.py.
#include "room.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <vector>

namespace {

using chat::delivery;
using audience = chat::delivery::audience;
const auto now = std::chrono::system_clock::time_point{std::chrono::milliseconds{1'700'000'000'123}};

std::vector<std::string> texts(const std::vector<delivery>& out) {
  std::vector<std::string> result;
  for (const auto& d : out) result.push_back(d.text);
  return result;
}

} // namespace

TEST_CASE("a newcomer is told who is online; a join welcomes, announces and lists") {
  chat::room room;
  CHECK(room.open(1) == std::vector<delivery>{{audience::one, 1, R"({"type":"users","users":[]})"}});
  const auto joined = room.text(1, "/nick ada", now);
  CHECK(joined == std::vector<delivery>{
                      {audience::one, 1, R"({"type":"welcome","nick":"ada","users":["ada"],"maxFileSize":16777216})"},
                      {audience::everyone, 1, R"({"type":"join","nick":"ada"})"},
                      {audience::everyone, 1, R"({"type":"users","users":["ada"]})"}});
  CHECK(room.open(2) == std::vector<delivery>{{audience::one, 2, R"({"type":"users","users":["ada"]})"}});
  CHECK(texts(room.close(1)) ==
        std::vector<std::string>{R"({"type":"leave","nick":"ada"})", R"({"type":"users","users":[]})"});
}

TEST_CASE("nicknames are unique in a room, ignoring ASCII case") {
  chat::room room;
  (void)room.open(1);
  (void)room.open(2);
  (void)room.text(1, "/nick ada", now);
  const auto refused = room.text(2, "/nick ADA", now);
  REQUIRE(refused.size() == 1);
  CHECK(refused[0].to == audience::one);
  CHECK(refused[0].text == R"({"type":"error","text":"the nickname ADA is taken","command":"nick"})");
  CHECK(room.users() == std::vector<std::string>{"ada"});
}

TEST_CASE("without a server name, the roster is the plain users envelope to everyone") {
  chat::room room;
  (void)room.open(1);
  (void)room.text(1, "/nick ada", now);
  CHECK(room.roster() == delivery{audience::everyone, 0, R"({"type":"users","users":["ada"]})"});
}

TEST_CASE("with a server name (chat --redis), users and welcome carry it, and only they") {
  chat::room room;
  room.set_server("host \"1\":3000");
  CHECK(room.server() == "host \"1\":3000");
  CHECK(room.open(1) ==
        std::vector<delivery>{{audience::one, 1, R"({"type":"users","users":[],"server":"host \"1\":3000"})"}});
  CHECK(texts(room.text(1, "/nick ada", now)) ==
        std::vector<std::string>{
            R"({"type":"welcome","nick":"ada","users":["ada"],"maxFileSize":16777216,"server":"host \"1\":3000"})",
            R"({"type":"join","nick":"ada"})",
            R"({"type":"users","users":["ada"],"server":"host \"1\":3000"})"});
  (void)room.open(2);
  (void)room.text(2, "/nick bob", now);
  CHECK(room.roster() ==
        delivery{audience::everyone, 0, R"({"type":"users","users":["ada","bob"],"server":"host \"1\":3000"})"});
  CHECK(texts(room.text(2, "hi", now)) ==
        std::vector<std::string>{R"({"type":"message","from":"bob","text":"hi","time":"2023-11-14T22:13:20.123Z"})"});
  CHECK(texts(room.text(2, "/nick carl", now)) ==
        std::vector<std::string>{R"({"type":"nick","old":"bob","nick":"carl"})",
                                 R"({"type":"users","users":["ada","carl"],"server":"host \"1\":3000"})"});
  CHECK(texts(room.close(1)) ==
        std::vector<std::string>{R"({"type":"leave","nick":"ada"})",
                                 R"({"type":"users","users":["carl"],"server":"host \"1\":3000"})"});
}
