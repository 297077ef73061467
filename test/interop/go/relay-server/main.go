// relay-server is a minimal relay written from docs/relay-protocol.md on hashicorp/yamux (Debian's
// golang-github-hashicorp-yamux-dev), so that switchboard's agent (the yamux client side) meets the reference yamux.
//
//	relay-server -secret S
//
// It listens on 127.0.0.1:0 and prints "LISTENING <addr>", serves one agent: preamble, yamux server, control stream,
// hello with a nonce, checks the auth tag, answers bind with a public port on 127.0.0.1:0 ("BOUND <port>" on stdout), then
// opens one stream per visitor and copies both ways with half-close. Exits when the session ends.
package main

import (
	"bufio"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"

	"github.com/hashicorp/yamux"
)

func die(format string, args ...interface{}) {
	fmt.Printf("FAIL "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	secret := flag.String("secret", "", "AUTH_SECRET")
	flag.Parse()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		die("listen: %v", err)
	}
	fmt.Printf("LISTENING %s\n", ln.Addr())
	conn, err := ln.Accept()
	if err != nil {
		die("accept: %v", err)
	}
	preamble := make([]byte, 8)
	if _, err := io.ReadFull(conn, preamble); err != nil || string(preamble) != "SWBMUX1\n" {
		die("preamble %q %v", preamble, err)
	}
	config := yamux.DefaultConfig()
	config.LogOutput = os.Stderr
	session, err := yamux.Server(conn, config)
	if err != nil {
		die("yamux: %v", err)
	}
	control, err := session.AcceptStream()
	if err != nil {
		die("control: %v", err)
	}
	lines := bufio.NewReader(control)
	read := func() map[string]interface{} {
		line, err := lines.ReadBytes('\n')
		if err != nil {
			die("control read: %v", err)
		}
		m := map[string]interface{}{}
		if err := json.Unmarshal(line, &m); err != nil {
			die("control json: %v", err)
		}
		return m
	}
	write := func(m map[string]interface{}) {
		b, _ := json.Marshal(m)
		control.Write(append(b, '\n'))
	}
	nonceBytes := make([]byte, 32)
	rand.Read(nonceBytes)
	nonce := hex.EncodeToString(nonceBytes)
	write(map[string]interface{}{"type": "hello", "proto": 1, "auth": "hmac-sha256", "nonce": nonce})
	auth := read()
	mac := hmac.New(sha256.New, []byte(*secret))
	mac.Write([]byte(nonce))
	tag, _ := hex.DecodeString(fmt.Sprint(auth["tag"]))
	if auth["type"] != "auth" || !hmac.Equal(tag, mac.Sum(nil)) {
		write(map[string]interface{}{"type": "error", "code": "auth_failed", "message": "authentication failed"})
		die("auth failed")
	}
	if bind := read(); bind["type"] != "bind" {
		die("expected bind, got %v", bind["type"])
	}
	public, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		die("public listen: %v", err)
	}
	port := public.Addr().(*net.TCPAddr).Port
	write(map[string]interface{}{"type": "bound", "port": port, "leaseId": "0123456789abcdef0123456789abcdef", "leaseTtlMs": 0})
	fmt.Printf("BOUND %d\n", port)
	go func() {
		<-session.CloseChan()
		fmt.Println("SESSION ENDED")
		os.Exit(0)
	}()
	for {
		visitor, err := public.Accept()
		if err != nil {
			die("public accept: %v", err)
		}
		stream, err := session.OpenStream()
		if err != nil {
			visitor.Close()
			continue
		}
		go splice(visitor.(*net.TCPConn), stream)
	}
}

// splice: the visitor's FIN becomes a yamux FIN (stream.Close), the stream's EOF becomes CloseWrite on the visitor.
func splice(visitor *net.TCPConn, stream *yamux.Stream) {
	done := make(chan struct{})
	go func() {
		io.Copy(visitor, stream)
		visitor.CloseWrite()
		close(done)
	}()
	io.Copy(stream, visitor)
	stream.Close()
	<-done
	visitor.Close()
}
