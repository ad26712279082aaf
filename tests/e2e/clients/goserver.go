// An mTLS server as Go programs write one: tls.RequireAndVerifyClientCert with the partner's root as the only
// ClientCAs. It answers one connection at a time with 200 and exits when stdin closes; it prints "listening PORT"
// once ready. Used as a judge: does Go's crypto/tls accept this client chain?
package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: goserver root.pem server.crt server.key")
		os.Exit(2)
	}
	roots := x509.NewCertPool()
	rootPEM, err := os.ReadFile(os.Args[1])
	if err != nil || !roots.AppendCertsFromPEM(rootPEM) {
		fmt.Fprintln(os.Stderr, "root: no certificates")
		os.Exit(1)
	}
	pair, err := tls.LoadX509KeyPair(os.Args[2], os.Args[3])
	if err != nil {
		fmt.Fprintln(os.Stderr, "server key pair:", err)
		os.Exit(1)
	}
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(1)
	}
	server := &http.Server{
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: roots,
			ClientAuth: tls.RequireAndVerifyClientCert},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") }),
		ErrorLog: nil,
	}
	fmt.Printf("listening %d\n", listener.Addr().(*net.TCPAddr).Port)
	go func() { io.Copy(io.Discard, os.Stdin); os.Exit(0) }()
	server.ServeTLS(listener, "", "")
}
