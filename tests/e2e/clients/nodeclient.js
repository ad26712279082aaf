// The partner guide's Node client: an https.Agent with the mounted cert, key and CA. Prints the HTTP status.
const fs = require("fs");
const https = require("https");
const [url, cert, key, ca] = process.argv.slice(2);
const agent = new https.Agent({ cert: fs.readFileSync(cert), key: fs.readFileSync(key), ca: fs.readFileSync(ca) });
https
  .get(url, { agent, timeout: 10000 }, (res) => {
    res.resume();
    res.on("end", () => console.log(res.statusCode));
  })
  .on("error", (err) => {
    console.error("request:", err.message);
    process.exit(1);
  });
