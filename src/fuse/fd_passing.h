// One descriptor over a unix socket (SCM_RIGHTS) with one byte of data: what libfuse's mount
// helpers hand back over `_FUSE_COMMFD`. Header-only: ward-fusermount and the tests use it.
// send_fd: true when the byte and the descriptor went (errno set otherwise; EINTR retried).
// recv_fd: the received descriptor (the caller owns it), or -1 with errno set (ECONNRESET: the
// other end closed; EPROTO: a message without a descriptor).
#pragma once

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace ward::fuse::detail {

// The message both directions use: one byte, room for one descriptor.
struct FdMessage {
  char byte = 0;
  iovec iov{&byte, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  FdMessage() {
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
  }
  FdMessage(const FdMessage&) = delete;  // msg points into itself
  FdMessage& operator=(const FdMessage&) = delete;
};

inline bool send_fd(int sock, int fd) {
  FdMessage m;
  cmsghdr* c = CMSG_FIRSTHDR(&m.msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
  ssize_t n;
  while ((n = ::sendmsg(sock, &m.msg, MSG_NOSIGNAL)) < 0 && errno == EINTR) {}
  return n == 1;
}

inline int recv_fd(int sock, int flags = 0) {
  FdMessage m;
  ssize_t n;
  while ((n = ::recvmsg(sock, &m.msg, MSG_CMSG_CLOEXEC | flags)) < 0 && errno == EINTR) {}
  if (n == 0) errno = ECONNRESET;  // the other end is closed (its process may have died)
  if (n != 1) return -1;
  const cmsghdr* c = CMSG_FIRSTHDR(&m.msg);
  if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(sizeof(int))) {
    errno = EPROTO;
    return -1;
  }
  int fd = -1;
  std::memcpy(&fd, CMSG_DATA(c), sizeof fd);
  return fd;
}

}  // namespace ward::fuse::detail
