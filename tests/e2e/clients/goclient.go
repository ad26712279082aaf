// An mTLS client as Go programs write one: tls.LoadX509KeyPair on the mounted files, sent exactly as they are
// (Go never completes a chain from ca.crt), ca.crt as the only roots for the server. Prints the HTTP status.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

func main() {
	if len(os.Args) != 5 {
		fmt.Fprintln(os.Stderr, "usage: goclient URL tls.crt tls.key ca.crt")
		os.Exit(2)
	}
	pair, err := tls.LoadX509KeyPair(os.Args[2], os.Args[3])
	if err != nil {
		fmt.Fprintln(os.Stderr, "load key pair:", err)
		os.Exit(1)
	}
	roots := x509.NewCertPool()
	caPEM, err := os.ReadFile(os.Args[4])
	if err != nil || !roots.AppendCertsFromPEM(caPEM) {
		fmt.Fprintln(os.Stderr, "ca.crt: no certificates")
		os.Exit(1)
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: roots},
	}}
	resp, err := client.Get(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "request:", err)
		os.Exit(1)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	fmt.Println(resp.StatusCode)
}
