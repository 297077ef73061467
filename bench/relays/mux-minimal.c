/*
 * A minimal Modbus TCP mux in C for `npm run bench:mux` (built with `cc -O2` when a compiler is present): the same
 * behaviour as mux-minimal.cjs, one thread, level-triggered epoll, a blocking write per frame. Many clients, one upstream
 * connection to the device (argv[1] is its port on 127.0.0.1), one request in flight, transaction ids rewritten and
 * restored. No deadlines, fairness or limits beyond fixed arrays. It shows what native code reaches on this machine with
 * the same processes and cores, so a ratio to the direct client can be read as the machine's or switchboard's.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_FD 4096
#define MAX_FRAME 260 /* MBAP prefix (6) + length (at most 254) */
#define QUEUE_SLOTS 8192

struct client { unsigned char pending[4 * MAX_FRAME]; int length; };
struct request { int fd; int length; unsigned char frame[MAX_FRAME]; };

static struct client *clients[MAX_FD];
static struct request queue[QUEUE_SLOTS];
static unsigned queue_head, queue_tail; /* free-running; slots are index % QUEUE_SLOTS */
static int upstream;
static int inflight_fd = -1; /* -1: nothing in flight; -2: in flight for a client that left (the reply is dropped) */
static unsigned char inflight_id[2];
static unsigned short transaction_id;

static void write_all(int fd, const unsigned char *bytes, int length) {
  while (length > 0) {
    ssize_t n = write(fd, bytes, length);
    if (n <= 0) return; /* a client gone: its reply is dropped */
    bytes += n;
    length -= n;
  }
}

static void pump(void) {
  if (inflight_fd != -1) return;
  struct request *r;
  do {
    if (queue_head == queue_tail) return;
    r = &queue[queue_head++ % QUEUE_SLOTS];
  } while (r->fd < 0); /* its client left */
  inflight_fd = r->fd;
  memcpy(inflight_id, r->frame, 2);
  transaction_id++;
  r->frame[0] = transaction_id >> 8;
  r->frame[1] = transaction_id & 0xff;
  write_all(upstream, r->frame, r->length);
}

/* A client left: nothing of its may reach whoever gets its descriptor number next. */
static void forget(int fd) {
  close(fd);
  free(clients[fd]);
  clients[fd] = NULL;
  if (inflight_fd == fd) inflight_fd = -2;
  for (unsigned i = queue_head; i != queue_tail; i++)
    if (queue[i % QUEUE_SLOTS].fd == fd) queue[i % QUEUE_SLOTS].fd = -1;
}

static int frame_size(const unsigned char *bytes, int available) {
  if (available < 6) return 0;
  int size = 6 + (bytes[4] << 8 | bytes[5]);
  if (size > MAX_FRAME) return -1;
  return available >= size ? size : 0;
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  int one = 1;
  struct sockaddr_in address = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
  address.sin_port = htons(atoi(argv[1]));
  upstream = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(upstream, (struct sockaddr *)&address, sizeof address) != 0) { perror("connect"); return 1; }
  setsockopt(upstream, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

  int listener = socket(AF_INET, SOCK_STREAM, 0);
  address.sin_port = 0;
  socklen_t length = sizeof address;
  if (bind(listener, (struct sockaddr *)&address, sizeof address) != 0 || listen(listener, 1024) != 0 ||
      getsockname(listener, (struct sockaddr *)&address, &length) != 0) { perror("listen"); return 1; }
  printf("{\"port\":%d}\n", ntohs(address.sin_port));
  fflush(stdout);

  int poller = epoll_create1(0);
  struct epoll_event event = { .events = EPOLLIN };
  event.data.fd = listener;
  epoll_ctl(poller, EPOLL_CTL_ADD, listener, &event);
  event.data.fd = upstream;
  epoll_ctl(poller, EPOLL_CTL_ADD, upstream, &event);

  static unsigned char replies[65536 + MAX_FRAME];
  int replies_length = 0;
  struct epoll_event events[64];
  for (;;) {
    int ready = epoll_wait(poller, events, 64, -1);
    for (int k = 0; k < ready; k++) {
      int fd = events[k].data.fd;
      if (fd == listener) {
        int c = accept(listener, NULL, NULL);
        if (c < 0) continue;
        if (c >= MAX_FD) { close(c); continue; }
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        clients[c] = calloc(1, sizeof(struct client));
        event.data.fd = c;
        epoll_ctl(poller, EPOLL_CTL_ADD, c, &event);
      } else if (fd == upstream) {
        ssize_t n = read(upstream, replies + replies_length, sizeof replies - replies_length);
        if (n <= 0) return 1; /* the device went away: the benchmark is over */
        replies_length += n;
        int offset = 0, size;
        while ((size = frame_size(replies + offset, replies_length - offset)) > 0) {
          int to = inflight_fd;
          unsigned char id[2] = { inflight_id[0], inflight_id[1] };
          inflight_fd = -1;
          pump(); /* the next request first, as switchboard does */
          memcpy(replies + offset, id, 2);
          if (to >= 0) write_all(to, replies + offset, size);
          offset += size;
        }
        if (size < 0) return 1;
        memmove(replies, replies + offset, replies_length - offset);
        replies_length -= offset;
      } else {
        struct client *c = clients[fd];
        ssize_t n = read(fd, c->pending + c->length, sizeof c->pending - c->length);
        if (n <= 0) { forget(fd); continue; }
        c->length += n;
        int offset = 0, size;
        while ((size = frame_size(c->pending + offset, c->length - offset)) > 0 && queue_tail - queue_head < QUEUE_SLOTS) {
          struct request *r = &queue[queue_tail++ % QUEUE_SLOTS];
          r->fd = fd;
          r->length = size;
          memcpy(r->frame, c->pending + offset, size);
          offset += size;
        }
        if (size < 0) { forget(fd); continue; }
        memmove(c->pending, c->pending + offset, c->length - offset);
        c->length -= offset;
        pump();
      }
    }
  }
}
