// yamux-peer is an interop partner for switchboard's yamux session, built on hashicorp/yamux (Debian's
// golang-github-hashicorp-yamux-dev) so that our code is checked against code nobody here wrote.
//
//	yamux-peer server <listen-addr>
//	    Listens (use 127.0.0.1:0), prints "LISTENING <addr>", serves one connection as the yamux server: every accepted
//	    stream is echoed until the peer half-closes it, then closed (FIN). With -open N it also opens N streams of its
//	    own, each carrying -bytes B of pattern and then FIN. Exits when the session ends.
//	yamux-peer client <dial-addr> -streams N -bytes B [-ping]   (both modes: -keepalive 30s)
//	    Dials, runs the yamux client, opens N concurrent streams, writes B bytes of pattern on each while reading the echo,
//	    checks it, closes the stream; pings if asked. Prints "OK ..." and exits 0, or "FAIL ..." and exits 1.
//
// The pattern of stream k (0-based) is byte i = (i*7 + k) & 0xff, so a misrouted or reordered byte is caught.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/yamux"
)

func pattern(k, size int) []byte {
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(i*7 + k)
	}
	return b
}

var keepAlive = 30 * time.Second

func config() *yamux.Config {
	c := yamux.DefaultConfig()
	c.LogOutput = os.Stderr
	c.ConnectionWriteTimeout = 5 * time.Second
	c.KeepAliveInterval = keepAlive
	return c
}

func fail(format string, args ...interface{}) {
	fmt.Printf("FAIL "+format+"\n", args...)
	os.Exit(1)
}

func runServer(addr string, open, size int) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fail("listen: %v", err)
	}
	fmt.Printf("LISTENING %s\n", ln.Addr().String())
	conn, err := ln.Accept()
	if err != nil {
		fail("accept: %v", err)
	}
	ln.Close()
	session, err := yamux.Server(conn, config())
	if err != nil {
		fail("server: %v", err)
	}
	for k := 0; k < open; k++ {
		stream, err := session.OpenStream()
		if err != nil {
			fail("open: %v", err)
		}
		go func(k int, s *yamux.Stream) {
			s.Write(pattern(k, size))
			s.Close()
		}(k, stream)
	}
	for {
		stream, err := session.AcceptStream()
		if err != nil {
			fmt.Printf("SESSION-END %v\n", err)
			return
		}
		go func(s *yamux.Stream) {
			n, err := io.Copy(s, s)
			fmt.Fprintf(os.Stderr, "echoed stream %d: %d bytes (%v)\n", s.StreamID(), n, err)
			s.Close()
		}(stream)
	}
}

func runClient(addr string, streams, size int, ping bool) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		fail("dial: %v", err)
	}
	session, err := yamux.Client(conn, config())
	if err != nil {
		fail("client: %v", err)
	}
	errs := make(chan error, streams)
	var wg sync.WaitGroup
	for k := 0; k < streams; k++ {
		wg.Add(1)
		go func(k int) {
			defer wg.Done()
			stream, err := session.OpenStream()
			if err != nil {
				errs <- fmt.Errorf("open %d: %v", k, err)
				return
			}
			want := pattern(k, size)
			got := make([]byte, size)
			readErr := make(chan error, 1)
			go func() {
				_, err := io.ReadFull(stream, got)
				readErr <- err
			}()
			if _, err := stream.Write(want); err != nil {
				errs <- fmt.Errorf("write %d: %v", k, err)
				return
			}
			if err := <-readErr; err != nil {
				errs <- fmt.Errorf("read %d: %v", k, err)
				return
			}
			if !bytes.Equal(got, want) {
				errs <- fmt.Errorf("stream %d: echo differs", k)
				return
			}
			stream.Close()
		}(k)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		fail("%v", err)
	}
	rtt := time.Duration(0)
	if ping {
		rtt, err = session.Ping()
		if err != nil {
			fail("ping: %v", err)
		}
	}
	fmt.Printf("OK streams=%d bytes=%d ping=%v rtt=%v\n", streams, size, ping, rtt)
	session.Close()
}

func main() {
	if len(os.Args) < 3 {
		fail("usage: yamux-peer server|client <addr> [flags]")
	}
	mode, addr := os.Args[1], os.Args[2]
	flags := flag.NewFlagSet(mode, flag.ExitOnError)
	streams := flags.Int("streams", 8, "client: concurrent streams")
	size := flags.Int("bytes", 1<<20, "bytes of pattern per stream")
	ping := flags.Bool("ping", false, "client: ping the server after the transfers")
	open := flags.Int("open", 0, "server: streams to open towards the client")
	flags.DurationVar(&keepAlive, "keepalive", keepAlive, "interval of yamux keepalive pings")
	flags.Parse(os.Args[3:])
	switch mode {
	case "server":
		runServer(addr, *open, *size)
	case "client":
		runClient(addr, *streams, *size, *ping)
	default:
		fail("unknown mode %q", mode)
	}
}
