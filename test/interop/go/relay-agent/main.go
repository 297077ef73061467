// relay-agent is a switchboard agent written from docs/relay-protocol.md alone, on hashicorp/yamux (Debian's
// golang-github-hashicorp-yamux-dev), so that the relay is checked against a yamux nobody here wrote.
//
//	relay-agent -relay 127.0.0.1:8000 -service 127.0.0.1:7000 [-secret S] [-port N] [-lease ID]
//
// It connects, sends the preamble, runs the yamux client, opens the control stream, answers hello (HMAC-SHA256 of the
// nonce text keyed by the secret), binds, and prints "BOUND <port> <leaseId>" or "ERROR <code> <message>" on stdout. Then
// every stream the relay opens is copied to a new connection to the service, with half-close both ways. It exits when the
// session ends.
package main

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/hashicorp/yamux"
)

type message struct {
	Type       string `json:"type"`
	Proto      int    `json:"proto,omitempty"`
	Auth       string `json:"auth,omitempty"`
	Nonce      string `json:"nonce,omitempty"`
	Tag        string `json:"tag,omitempty"`
	Port       int    `json:"port,omitempty"`
	LeaseID    string `json:"leaseId,omitempty"`
	LeaseTTLMs int    `json:"leaseTtlMs,omitempty"`
	Code       string `json:"code,omitempty"`
	Message    string `json:"message,omitempty"`
}

func die(format string, args ...interface{}) {
	fmt.Printf("FAIL "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	relay := flag.String("relay", "", "relay host:port")
	service := flag.String("service", "", "service host:port")
	secret := flag.String("secret", "", "AUTH_SECRET")
	port := flag.Int("port", 0, "public port wanted (0 = any)")
	lease := flag.String("lease", "", "lease id to reclaim")
	flag.Parse()

	conn, err := net.DialTimeout("tcp", *relay, 5*time.Second)
	if err != nil {
		die("dial: %v", err)
	}
	if _, err := conn.Write([]byte("SWBMUX1\n")); err != nil {
		die("preamble: %v", err)
	}
	config := yamux.DefaultConfig()
	config.LogOutput = os.Stderr
	session, err := yamux.Client(conn, config)
	if err != nil {
		die("yamux: %v", err)
	}
	control, err := session.Open()
	if err != nil {
		die("open control stream: %v", err)
	}
	lines := bufio.NewReaderSize(control, 4096)
	read := func() message {
		line, err := lines.ReadBytes('\n')
		if err != nil {
			die("control read: %v", err)
		}
		var m message
		if err := json.Unmarshal(line, &m); err != nil {
			die("control json: %v", err)
		}
		return m
	}
	write := func(m message) {
		b, _ := json.Marshal(m)
		if _, err := control.Write(append(b, '\n')); err != nil {
			die("control write: %v", err)
		}
	}

	hello := read()
	if hello.Type != "hello" {
		die("expected hello, got %s", hello.Type)
	}
	if hello.Auth == "hmac-sha256" {
		mac := hmac.New(sha256.New, []byte(*secret))
		mac.Write([]byte(hello.Nonce))
		write(message{Type: "auth", Tag: hex.EncodeToString(mac.Sum(nil))})
	}
	write(message{Type: "bind", Port: *port, LeaseID: *lease})
	answer := read()
	switch answer.Type {
	case "bound":
		fmt.Printf("BOUND %d %s\n", answer.Port, answer.LeaseID)
	case "error":
		fmt.Printf("ERROR %s %s\n", answer.Code, answer.Message)
		os.Exit(2)
	default:
		die("unexpected %s", answer.Type)
	}

	for {
		stream, err := session.AcceptStream()
		if err != nil {
			fmt.Printf("SESSION ENDED %v\n", err)
			return
		}
		go serve(stream, *service)
	}
}

// serve copies one visitor stream to a new service connection. Half-close: the visitor's FIN (EOF on the stream) becomes
// CloseWrite on the service connection; the service's FIN becomes Close on the stream (a yamux FIN).
func serve(stream *yamux.Stream, service string) {
	conn, err := net.Dial("tcp", service)
	if err != nil {
		stream.Close()
		return
	}
	tcp := conn.(*net.TCPConn)
	done := make(chan struct{})
	go func() {
		io.Copy(tcp, stream)
		tcp.CloseWrite()
		close(done)
	}()
	io.Copy(stream, tcp)
	stream.Close()
	<-done
	tcp.Close()
}
