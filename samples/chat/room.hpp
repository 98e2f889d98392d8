// The chat room without any I/O: it is told what each connection did and answers with
// the JSON envelopes to send and to whom. main.cpp does the sending. The protocol is in
// README.md beside this file.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace chat {

/// Identifies a connection: the socket's id.
using client_id = std::uint64_t;

/// One JSON envelope to send as a text frame.
struct delivery {
  enum class audience : std::uint8_t {
    one,      ///< to `who` only
    everyone, ///< to every connection, `who` included (one broadcast)
  };
  audience to;
  client_id who;
  std::string text;
  /// A `file` envelope from `who`: the bytes of `who`'s next binary message must
  /// follow it at once for every other connection (not for `who`, which sent them).
  bool announces_file = false;

  bool operator==(const delivery&) const = default;
};

/// The room's limits.
struct limits {
  std::size_t max_nick = 24;             ///< code points in a nickname
  std::size_t max_text = 64 * 1024;      ///< bytes in one chat message
  std::uint64_t max_file = 16 << 20;     ///< bytes in one shared file
  std::size_t max_file_name = 200;       ///< bytes kept of a file's name
};

/// Nicknames, who is online, and the envelopes of the protocol.
class room {
public:
  explicit room(limits l = {}) : limits_{l} {}

  /// A connection opened: it is told who is online. It joins later.
  [[nodiscard]] std::vector<delivery> open(client_id id);

  /// A connection sent a text message: a chat message or a command.
  [[nodiscard]] std::vector<delivery> text(client_id id, std::string_view text,
                                           std::chrono::system_clock::time_point now);

  /// What to do with a binary message that starts arriving from a connection.
  struct binary_decision {
    /// Relay the bytes to everyone but the sender: a `/file` announced them and its
    /// envelope went out. Otherwise they are dropped.
    bool relay = false;
    /// What to send (an error when nothing was announced).
    std::vector<delivery> out;
  };
  [[nodiscard]] binary_decision binary(client_id id);

  /// The announced file of `id` is not coming (its bytes took too long, or something
  /// else came first): bytes arriving later are not relayed.
  void cancel_file(client_id id);

  /// A connection closed: a leave notice when it had joined.
  [[nodiscard]] std::vector<delivery> close(client_id id);

  /// Who is online, in the order they joined.
  [[nodiscard]] std::vector<std::string> users() const;

  /// Names this room's server among others sharing one room through Redis (`chat
  /// --redis`): the `users` and `welcome` envelopes then carry `"server":NAME`, so
  /// that a page can keep one list per server. Empty (the default): no `server` field.
  void set_server(std::string name) { server_ = std::move(name); }
  [[nodiscard]] const std::string& server() const noexcept { return server_; }

  /// Who is online here, to everyone: the `users` envelope that `--redis` sends
  /// periodically, so that newcomers and the other servers learn this server's list
  /// and notice when it is gone.
  [[nodiscard]] delivery roster() const;

  /// The nickname of a connection, when it has joined.
  [[nodiscard]] std::optional<std::string> nick(client_id id) const;

  /// The room's limits.
  [[nodiscard]] const limits& room_limits() const noexcept { return limits_; }

private:
  struct member {
    std::optional<std::string> nick; ///< set once joined
    std::uint64_t joined_order = 0;
    bool announced = false;          ///< a /file's envelope went out; its bytes are next
  };

  std::vector<delivery> join(client_id id, member& m, std::string nick);
  std::vector<delivery> set_nick(client_id id, member& m, std::string_view arg);
  std::vector<delivery> announce(client_id id, member& m, std::string_view arg);
  [[nodiscard]] bool taken(std::string_view nick, client_id except) const;
  [[nodiscard]] std::string users_array() const;
  [[nodiscard]] std::string users_envelope() const;
  [[nodiscard]] std::string guest_nick(client_id id) const;

  /// `,"server":NAME`, or nothing without a server name.
  [[nodiscard]] std::string server_field() const;

  limits limits_;
  std::string server_;
  std::map<client_id, member> members_;
  std::uint64_t next_order_ = 0;
};

/// Why `nick` is not an acceptable nickname, or empty when it is: 1 to `max` code
/// points of UTF-8, none of them a space or a control character.
[[nodiscard]] std::string_view check_nick(std::string_view nick, std::size_t max);

/// `t` as ISO 8601 in UTC with milliseconds: 2024-05-01T12:34:56.789Z.
[[nodiscard]] std::string iso8601(std::chrono::system_clock::time_point t);

} // namespace chat
