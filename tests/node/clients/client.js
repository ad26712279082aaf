// The partner guide's Node client: an https.Agent with the mounted certificate, key and CA, one mTLS request per
// second. READ_FILES=each re-reads the files for every request (what picks up a rotation by itself);
// READ_FILES=once reads them at start only (what needs the operator's workload rollout).
const fs = require('fs');
const https = require('https');

const name = process.env.CLIENT_NAME || 'client';
const readEach = (process.env.READ_FILES || 'each') === 'each';
const host = process.env.SERVER_HOST;
const files = () => ({
  cert: fs.readFileSync('/tls/tls.crt'),
  key: fs.readFileSync('/tls/tls.key'),
  ca: fs.readFileSync('/tls/ca.crt'),
});
const atStart = readEach ? null : files();
let made = 0;
let failed = 0;

function tick() {
  let agent;
  try {
    agent = new https.Agent({ ...(atStart || files()), keepAlive: false });
  } catch (err) {
    made += 1; failed += 1;
    console.log(JSON.stringify({ t: Date.now() / 1000, ok: false, error: `files: ${err.message}`, made, failed }));
    return;
  }
  made += 1;
  const req = https.request({ host, port: 8443, path: '/', agent, headers: { 'x-client': name }, timeout: 3000 },
    (res) => {
      let body = '';
      res.on('data', (chunk) => { body += chunk; });
      res.on('end', () => {
        const ok = res.statusCode === 200;
        if (!ok) failed += 1;
        console.log(JSON.stringify({ t: Date.now() / 1000, ok, served: body, made, failed }));
      });
    });
  req.on('timeout', () => req.destroy(new Error('timeout')));
  req.on('error', (err) => {
    failed += 1;
    console.log(JSON.stringify({ t: Date.now() / 1000, ok: false, error: err.message, made, failed }));
  });
  req.end();
}

setInterval(tick, 1000);
