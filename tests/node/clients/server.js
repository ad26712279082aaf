// The server a client talks to: trusts only the issuing CA (/ca/ca.crt), requires a client certificate, and logs
// the serial of every client certificate it accepts (one JSON line per request), and every handshake it refuses.
const fs = require('fs');
const https = require('https');

const server = https.createServer({
  key: fs.readFileSync('/tls/tls.key'),
  cert: fs.readFileSync('/tls/tls.crt'),
  ca: fs.readFileSync('/ca/ca.crt'),
  requestCert: true,
  rejectUnauthorized: true,
}, (req, res) => {
  const peer = req.socket.getPeerCertificate();
  console.log(JSON.stringify({ t: Date.now() / 1000, serial: peer.serialNumber, notAfter: peer.valid_to,
                               client: req.headers['x-client'] || '' }));
  res.end(peer.serialNumber);
});
server.on('tlsClientError', (err) => console.log(JSON.stringify({ t: Date.now() / 1000, refused: err.message })));
server.listen(8443, () => console.log(JSON.stringify({ t: Date.now() / 1000, listening: 8443 })));
