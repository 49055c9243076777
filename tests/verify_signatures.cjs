// Independent Standard Webhooks verifier for Herald's end-to-end tests (npm `standardwebhooks`).
//
// Usage: node verify_signatures.cjs DELIVERIES.json whsec_SECRET
// Each item is {"headers": {...}, "body": "..."}; every one must verify with the reference
// library. Prints the number verified; exits 1 on the first failure. The library is installed
// by tests/install-tools.sh under $HERALD_NPM_PREFIX (default ~/.cache/herald-npm).
const fs = require("fs");
const os = require("os");
const path = require("path");

const prefix = process.env.HERALD_NPM_PREFIX || path.join(os.homedir(), ".cache", "herald-npm");
const { Webhook } = require(path.join(prefix, "node_modules", "standardwebhooks"));

const items = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const hook = new Webhook(process.argv[3]);
items.forEach((item, n) => {
  try {
    hook.verify(item.body, item.headers);
  } catch (err) {
    console.error(`delivery ${n} failed verification: ${err}: ${JSON.stringify(item.headers)}`);
    process.exit(1);
  }
});
console.log(items.length);
