// An unmodified Azure SDK gets tokens from token-broker's drop-in listener (--imds-listen):
// @azure/identity's ManagedIdentityCredential, configured only through the environment variables
// that Azure sets (AZURE_POD_IDENTITY_AUTHORITY_HOST for IMDS style; IDENTITY_ENDPOINT and
// IDENTITY_HEADER for App Service style), against a broker backed by imds-emulator.
//
// The SDK (MSAL underneath) picks its source once per process and caches it, so each case runs
// in a child process: this file run as `node azure_identity.test.mjs --client CASE`.
// Tokens are never printed: the child hands them to the parent over a pipe, the parent compares.

import { spawn } from "node:child_process";
import { once } from "node:events";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

// The SDK turns the scope into its resource by dropping "/.default".
const DATABASE = "https://database.windows.net";
const SCOPE = "https://database.windows.net/.default";
const CLIENT_ID = "11111111-1111-1111-1111-111111111111";
const OBJECT_ID = "22222222-2222-2222-2222-222222222222";
const RESOURCE_ID =
  "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/dev/providers/" +
  "Microsoft.ManagedIdentity/userAssignedIdentities/token-broker-dev";
const SELF = fileURLToPath(import.meta.url);

// Variables through which an Azure SDK finds a managed-identity source: the child starts with
// none of them, then gets exactly the ones its case sets.
const SOURCE_VARIABLES = [
  "AZURE_POD_IDENTITY_AUTHORITY_HOST",
  "IDENTITY_ENDPOINT",
  "IDENTITY_HEADER",
  "IDENTITY_SERVER_THUMBPRINT",
  "IMDS_ENDPOINT",
  "MSI_ENDPOINT",
  "MSI_SECRET",
  "AZURE_FEDERATED_TOKEN_FILE",
  "AZURE_CLIENT_ID",
  "AZURE_TENANT_ID",
  "AZURE_AUTHORITY_HOST",
];

// ---- child: one getToken through the SDK ----

async function client() {
  const options = JSON.parse(process.env.TB_TEST_CREDENTIAL_OPTIONS ?? "{}");
  const { ManagedIdentityCredential } = await import("@azure/identity");
  const credential = new ManagedIdentityCredential(options);
  let result;
  try {
    const token = await credential.getToken(SCOPE);
    result = { ok: true, token: token.token, expiresOnTimestamp: token.expiresOnTimestamp };
  } catch (error) {
    result = { ok: false, name: error.name, message: String(error.message) };
  }
  process.stdout.write(JSON.stringify(result));
}

// ---- parent: emulator + broker, and the cases ----

function decodeClaims(jwt) {
  const payload = jwt.split(".")[1];
  return JSON.parse(Buffer.from(payload, "base64url").toString("utf8"));
}

async function waitFor(what, condition, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await condition();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function startProcess(binary, args, logFile) {
  const out = fs.openSync(logFile, "w");
  const child = spawn(binary, args, { stdio: ["ignore", out, out] });
  fs.closeSync(out);
  return child;
}

async function stopProcess(child) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, "exit");
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
  await exited;
  clearTimeout(timer);
}

function unixGet(socketPath, target) {
  return new Promise((resolve, reject) => {
    const request = http.get({ socketPath, path: target }, (response) => {
      let body = "";
      response.setEncoding("utf8");
      response.on("data", (chunk) => (body += chunk));
      response.on("end", () => resolve({ status: response.statusCode, body }));
    });
    request.on("error", reject);
  });
}

/// Runs the SDK in a child with `env` (on top of an environment without any source variable).
async function sdkGetToken(env, credentialOptions = {}) {
  const childEnv = { ...process.env };
  for (const name of SOURCE_VARIABLES) delete childEnv[name];
  Object.assign(childEnv, env, { TB_TEST_CREDENTIAL_OPTIONS: JSON.stringify(credentialOptions) });
  const child = spawn(process.execPath, [SELF, "--client"], {
    env: childEnv,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk) => (stdout += chunk));
  child.stderr.on("data", (chunk) => (stderr += chunk));
  const [code] = await once(child, "exit");
  assert.equal(code, 0, `the SDK child failed:\n${stderr}`);
  return JSON.parse(stdout);
}

if (process.argv.includes("--client")) {
  await client();
} else {
  describe("@azure/identity ManagedIdentityCredential against token-broker --imds-listen", () => {
    let dir;
    let emulator;
    let broker;
    let listen; // "127.0.0.1:PORT"
    let identityHeader;
    let emulatorPort;
    // The emulator's own App Service route (--identity-header), to check it against the SDK.
    const emulatorHeader = "emulator-app-service-header";
    const tokensSeen = [];

    before(async () => {
      for (const name of ["TOKEN_BROKER_BIN", "IMDS_EMULATOR_BIN"]) {
        assert.ok(process.env[name], `${name} must name the built binary (see run)`);
      }
      dir = fs.mkdtempSync(path.join(os.tmpdir(), "tb-azsdk-"));
      const portFile = path.join(dir, "emulator.port");
      emulator = startProcess(
        process.env.IMDS_EMULATOR_BIN,
        ["--listen", "127.0.0.1:0", "--port-file", portFile, "--identity-header", emulatorHeader],
        path.join(dir, "emulator.log"),
      );
      emulatorPort = await waitFor("the emulator's port", () =>
        fs.existsSync(portFile) ? fs.readFileSync(portFile, "utf8").trim() : null,
      );
      const brokerLog = path.join(dir, "broker.log");
      broker = startProcess(
        process.env.TOKEN_BROKER_BIN,
        [
          "--imds-endpoint",
          `http://127.0.0.1:${emulatorPort}`,
          "--socket",
          path.join(dir, "broker.sock"),
          "--admin-listen",
          "off",
          "--imds-listen",
          "127.0.0.1:0",
        ],
        brokerLog,
      );
      listen = await waitFor("the broker's start-up line", () => {
        if (broker.exitCode !== null) {
          throw new Error(`token-broker exited:\n${fs.readFileSync(brokerLog, "utf8")}`);
        }
        const match = /"imds_listen":"(127\.0\.0\.1:\d+)"/.exec(fs.readFileSync(brokerLog, "utf8"));
        return match ? match[1] : null;
      });
      identityHeader = fs.readFileSync(path.join(dir, "identity-header"), "utf8").trim();
    });

    after(async () => {
      await stopProcess(broker);
      await stopProcess(emulator);
      if (dir) {
        // No token may reach a log.
        const logs = ["broker.log", "emulator.log"]
          .map((name) => fs.readFileSync(path.join(dir, name), "utf8"))
          .join("\n");
        for (const token of tokensSeen) {
          assert.ok(!logs.includes(token), "a token appears in the logs");
          assert.ok(!logs.includes(token.split(".")[2]), "a token signature appears in the logs");
        }
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });

    /// The SDK's token must be the broker's own (same cache), for the emulator identity, and
    /// expire when the broker says.
    async function expectBrokerToken(result, query = "") {
      assert.ok(result.ok, `getToken failed: ${result.name}: ${result.message}`);
      tokensSeen.push(result.token);
      const claims = decodeClaims(result.token);
      assert.equal(claims.aud, DATABASE);
      assert.equal(claims.appid, CLIENT_ID);
      const v1 = await unixGet(
        path.join(dir, "broker.sock"),
        `/v1/token?resource=${encodeURIComponent(DATABASE)}${query}`,
      );
      assert.equal(v1.status, 200, v1.status === 200 ? "" : v1.body);
      const body = JSON.parse(v1.body);
      tokensSeen.push(body.access_token);
      assert.ok(body.access_token === result.token, "the SDK got another token than the cache's");
      // MSAL recomputes expiry as its request time + (expires_on - its clock): within a second or
      // two of the broker's expires_on.
      assert.ok(
        Math.abs(result.expiresOnTimestamp - body.expires_on * 1000) <= 2000,
        `expiresOnTimestamp ${result.expiresOnTimestamp} vs expires_on ${body.expires_on}`,
      );
    }

    test("IMDS style: AZURE_POD_IDENTITY_AUTHORITY_HOST", async () => {
      const result = await sdkGetToken({ AZURE_POD_IDENTITY_AUTHORITY_HOST: `http://${listen}` });
      await expectBrokerToken(result);
    });

    test("IMDS style with a user-assigned identity: clientId, objectId, resourceId", async () => {
      const env = { AZURE_POD_IDENTITY_AUTHORITY_HOST: `http://${listen}` };
      await expectBrokerToken(await sdkGetToken(env, { clientId: CLIENT_ID }), `&client_id=${CLIENT_ID}`);
      await expectBrokerToken(await sdkGetToken(env, { objectId: OBJECT_ID }), `&object_id=${OBJECT_ID}`);
      await expectBrokerToken(
        await sdkGetToken(env, { resourceId: RESOURCE_ID }),
        `&mi_res_id=${encodeURIComponent(RESOURCE_ID)}`,
      );
    });

    test("IMDS probe (no Metadata header, no query) answers 400 as IMDS does", async () => {
      // What @azure/identity sends before trusting IMDS when DefaultAzureCredential probes it.
      const response = await fetch(`http://${listen}/metadata/identity/oauth2/token`, {
        headers: { Accept: "application/json" },
      });
      assert.equal(response.status, 400);
      assert.equal((await response.json()).error, "invalid_request");
    });

    test("App Service style: IDENTITY_ENDPOINT + IDENTITY_HEADER", async () => {
      const env = { IDENTITY_ENDPOINT: `http://${listen}/msi/token`, IDENTITY_HEADER: identityHeader };
      await expectBrokerToken(await sdkGetToken(env));
    });

    test("App Service style with a user-assigned identity: clientId, objectId, resourceId", async () => {
      const env = { IDENTITY_ENDPOINT: `http://${listen}/msi/token`, IDENTITY_HEADER: identityHeader };
      await expectBrokerToken(await sdkGetToken(env, { clientId: CLIENT_ID }), `&client_id=${CLIENT_ID}`);
      await expectBrokerToken(await sdkGetToken(env, { objectId: OBJECT_ID }), `&object_id=${OBJECT_ID}`);
      await expectBrokerToken(
        await sdkGetToken(env, { resourceId: RESOURCE_ID }),
        `&mi_res_id=${encodeURIComponent(RESOURCE_ID)}`,
      );
    });

    test("the emulator's App Service route satisfies the SDK, so the broker's app-service source is tested against a faithful stand-in", async () => {
      const env = {
        IDENTITY_ENDPOINT: `http://127.0.0.1:${emulatorPort}/msi/token`,
        IDENTITY_HEADER: emulatorHeader,
      };
      for (const options of [{}, { clientId: CLIENT_ID }, { objectId: OBJECT_ID }, { resourceId: RESOURCE_ID }]) {
        const result = await sdkGetToken(env, options);
        assert.ok(result.ok, `getToken ${JSON.stringify(options)} failed: ${result.name}: ${result.message}`);
        tokensSeen.push(result.token);
        const claims = decodeClaims(result.token);
        assert.equal(claims.aud, DATABASE);
        assert.equal(claims.appid, CLIENT_ID);
        assert.ok(result.expiresOnTimestamp > Date.now() + 3000 * 1000, "expires_on was read");
      }
      // An identity the emulator does not have is refused for each parameter: so the SDK's
      // parameter names (client_id, principal_id, mi_res_id) are the ones the emulator reads.
      const stranger = "99999999-9999-9999-9999-999999999999";
      for (const options of [{ clientId: stranger }, { objectId: stranger }, { resourceId: `/subscriptions/${stranger}` }]) {
        const result = await sdkGetToken(env, { ...options, retryOptions: { maxRetries: 0 } });
        assert.equal(result.ok, false, `${JSON.stringify(options)} got a token`);
      }
    });

    test("App Service style with a wrong IDENTITY_HEADER gets no token", async () => {
      const env = { IDENTITY_ENDPOINT: `http://${listen}/msi/token`, IDENTITY_HEADER: "not-the-secret" };
      const result = await sdkGetToken(env, { retryOptions: { maxRetries: 0 } });
      assert.equal(result.ok, false);
      assert.match(result.message, /X-IDENTITY-HEADER|401|unauthorized/i);
    });
  });
}
