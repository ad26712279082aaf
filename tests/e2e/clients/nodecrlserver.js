// A Node.js HTTPS server that requires a client certificate and checks it against a CA bundle and CRLs, as a
// partner's Node service configured from our publishCA ConfigMap would: tls.createSecureContext's `crl` option.
// Usage: node nodecrlserver.js PORT server.crt server.key ca.crt ca.crl
"use strict";
const fs = require("fs");
const https = require("https");

const [port, cert, key, ca, crl] = process.argv.slice(2);
const server = https.createServer(
  {
    cert: fs.readFileSync(cert),
    key: fs.readFileSync(key),
    ca: fs.readFileSync(ca),
    crl: fs.readFileSync(crl),
    requestCert: true,
    rejectUnauthorized: true,
  },
  (req, res) => {
    res.writeHead(200, { "Content-Type": "text/plain" });
    res.end("hello " + req.socket.getPeerCertificate().subject.CN + "\n");
  },
);
server.on("tlsClientError", (err) => process.stderr.write("refused: " + err.message + "\n"));
server.listen(Number(port), "127.0.0.1", () => process.stdout.write("listening\n"));
