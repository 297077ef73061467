// A service that behaves like ethransom/tcp-relay's echoserver.go, built against Debian's
// golang-github-inconshreveable-muxado-dev (the v1 snapshot) in GOPATH mode:
//
//  1. dial the relay and start a muxado client session with the heartbeat extension;
//  2. open the first stream, read to EOF the address the relay writes on it, close it;
//  3. accept one stream per visitor and echo it until the visitor half-closes, then close.
//
// Differences from echoserver.go, all for testing: the heartbeat interval and tolerance are flags (muxado.Dial
// hard-codes 3 s / 10 s; here the same extension is built with ext.NewHeartbeat), the echo writes only the bytes read
// (echoserver.go writes its whole 256-byte buffer every time), and events are printed as one line each on stdout:
//
//	address <text>          the relay's answer on the first stream
//	accepted <stream id>    a visitor stream
//	closed <code> <error>   the session ended (heartbeat timeout, relay gone); the process then exits with status 3
//
// With -forward host:port each visitor stream is spliced to a new TCP connection to that address instead of echoed (a
// tcp-relay service in front of a local server; bench/relay.ts uses it for its legacy row).
//
// Usage: muxado-service [-heartbeat 3s] [-tolerance 10s] [-forward host:port] host:port
package main

import (
	"flag"
	"fmt"
	"io"
	"io/ioutil"
	"net"
	"os"
	"time"

	"github.com/inconshreveable/muxado/proto"
	"github.com/inconshreveable/muxado/proto/ext"
)

func main() {
	interval := flag.Duration("heartbeat", 3*time.Second, "heartbeat interval (muxado's default is 3s)")
	tolerance := flag.Duration("tolerance", 10*time.Second, "heartbeat tolerance (muxado's default is 10s)")
	forward := flag.String("forward", "", "splice visitor streams to this host:port instead of echoing them")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: muxado-service [-heartbeat d] [-tolerance d] [-forward host:port] host:port")
		os.Exit(2)
	}

	conn, err := net.Dial("tcp", flag.Arg(0))
	if err != nil {
		fmt.Println("dial-error", err)
		os.Exit(1)
	}
	// What muxado.Client(conn) does, with our heartbeat settings.
	sess := proto.NewSession(conn, proto.NewStream, true, []proto.Extension{ext.NewHeartbeat(*interval, *tolerance)})

	go func() {
		code, err, _ := sess.Wait()
		fmt.Printf("closed %d %v\n", code, err)
		os.Exit(3)
	}()

	// Handshake, as echoserver.go: the relay sends our address down the first stream we open.
	first, err := sess.Open()
	if err != nil {
		fmt.Println("open-error", err)
		os.Exit(1)
	}
	address, err := ioutil.ReadAll(first)
	if err != nil {
		fmt.Println("handshake-error", err)
		os.Exit(1)
	}
	first.Close()
	fmt.Printf("address %s\n", address)

	for {
		stream, err := sess.Accept()
		if err != nil {
			// Accept fails only once the session is closed; the Wait goroutine reports and exits.
			time.Sleep(time.Second)
			os.Exit(3)
		}
		fmt.Printf("accepted %d\n", stream.Id())
		if *forward != "" {
			go splice(stream, *forward)
		} else {
			go echo(stream)
		}
	}
}

func echo(stream proto.IStream) {
	defer stream.Close()
	io.Copy(stream, stream)
}

func splice(stream proto.IStream, target string) {
	defer stream.Close()
	conn, err := net.Dial("tcp", target)
	if err != nil {
		return
	}
	defer conn.Close()
	go func() {
		io.Copy(conn, stream)
		conn.(*net.TCPConn).CloseWrite()
	}()
	io.Copy(stream, conn)
}
