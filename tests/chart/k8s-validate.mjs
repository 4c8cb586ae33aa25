// Offline Kubernetes schema validation of rendered objects.
//
// Two checks, because neither catches everything alone:
//  1. kubernetes-models (the OpenAPI schemas compiled to validators): types, required fields,
//     enums and formats. It lets unknown fields through.
//  2. A walk over the field maps of @kubernetes/client-node's generated models: every field of
//     every object must be a field of its type, so a misspelled field fails.
// Custom resources: ServiceMonitor (prometheus-operator models + the field tree of their typings)
// and AAD Pod Identity's AzureIdentity/AzureIdentityBinding (field maps written from the CRDs).
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { createRequire } from "node:module";
// Only the generated models: the package's main entry needs a newer Node.js than 20.
import * as clientModels from "@kubernetes/client-node/dist/gen/models/all.js";

const require = createRequire(import.meta.url);

// A package's folder (its "exports" hide the typings from require.resolve).
function packageDir(name) {
  let dir = dirname(require.resolve(name));
  while (!existsSync(join(dir, "package.json")) || JSON.parse(readFileSync(join(dir, "package.json"), "utf8")).name !== name) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`cannot find the folder of ${name}`);
    dir = parent;
  }
  return dir;
}

// ---- 1. kubernetes-models -------------------------------------------------------------------

const modelModules = {
  "monitoring.coreos.com/v1": "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1",
};

async function modelClass(apiVersion, kind) {
  const module = modelModules[apiVersion] ?? `kubernetes-models/${apiVersion}`;
  let exports;
  try {
    exports = await import(module);
  } catch {
    return undefined;
  }
  return exports[kind];
}

// ---- 2. unknown fields ----------------------------------------------------------------------

function clientModelName(apiVersion, kind) {
  // apps/v1 Deployment -> V1Deployment; policy/v1 PodDisruptionBudget -> V1PodDisruptionBudget.
  const version = apiVersion.split("/").pop();
  return version.charAt(0).toUpperCase() + version.slice(1) + kind;
}

function typeOfValue(value) {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  return typeof value;
}

// Walks `value` as client-node type `type`; pushes "path: problem" strings to `errors`.
function walkClientType(value, type, path, errors) {
  if (value === null || value === undefined) return;
  let match;
  if ((match = /^Array<(.+)>$/.exec(type))) {
    if (!Array.isArray(value)) return void errors.push(`${path}: expected a list, got ${typeOfValue(value)}`);
    value.forEach((item, i) => walkClientType(item, match[1], `${path}[${i}]`, errors));
    return;
  }
  if ((match = /^\{ \[key: string\]: (.+); \}$/.exec(type))) {
    if (typeOfValue(value) !== "object") return void errors.push(`${path}: expected a map, got ${typeOfValue(value)}`);
    for (const [key, item] of Object.entries(value)) walkClientType(item, match[1], `${path}.${key}`, errors);
    return;
  }
  switch (type) {
    case "any":
    case "object":
      return;
    case "string":
    case "Date":
    case "V1MicroTime":
      if (typeof value !== "string") errors.push(`${path}: expected a string, got ${typeOfValue(value)}`);
      return;
    case "number":
      if (typeof value !== "number") errors.push(`${path}: expected a number, got ${typeOfValue(value)}`);
      return;
    case "boolean":
      if (typeof value !== "boolean") errors.push(`${path}: expected a boolean, got ${typeOfValue(value)}`);
      return;
    case "IntOrString":
      if (typeof value !== "number" && typeof value !== "string") {
        errors.push(`${path}: expected an integer or a string, got ${typeOfValue(value)}`);
      }
      return;
  }
  const model = clientModels[type];
  if (!model || typeof model.getAttributeTypeMap !== "function") {
    return void errors.push(`${path}: no field map for type ${type}`);
  }
  if (typeOfValue(value) !== "object") return void errors.push(`${path}: expected an object (${type}), got ${typeOfValue(value)}`);
  const fields = new Map(model.getAttributeTypeMap().map((a) => [a.baseName, a.type]));
  for (const [key, item] of Object.entries(value)) {
    if (!fields.has(key)) {
      errors.push(`${path}.${key}: unknown field (not in ${type})`);
      continue;
    }
    walkClientType(item, fields.get(key), `${path}.${key}`, errors);
  }
}

// A field tree: {fields: {name: tree}} for objects, {items: tree} for lists, {map: true} for free
// maps, {} for scalars.
function walkTree(value, tree, path, errors) {
  if (value === null || value === undefined || !tree) return;
  if (tree.items) {
    if (!Array.isArray(value)) return void errors.push(`${path}: expected a list`);
    value.forEach((item, i) => walkTree(item, tree.items, `${path}[${i}]`, errors));
    return;
  }
  if (tree.clientType) return walkClientType(value, tree.clientType, path, errors);
  if (!tree.fields) return;
  if (typeOfValue(value) !== "object") return void errors.push(`${path}: expected an object`);
  for (const [key, item] of Object.entries(value)) {
    if (!(key in tree.fields)) {
      errors.push(`${path}.${key}: unknown field`);
      continue;
    }
    walkTree(item, tree.fields[key], `${path}.${key}`, errors);
  }
}

// The field tree of a kubernetes-models typings interface (generated, one field per line):
//     "name"?: {          -> object        "name"?: Array<{   -> list of objects
//     "name"?: string;    -> scalar        "name"?: {  [key: string]: ... } -> free map
function treeFromTypings(file, interfaceName) {
  const lines = readFileSync(file, "utf8").split("\n");
  let i = lines.findIndex((l) => l.includes(`export interface ${interfaceName} {`));
  if (i < 0) throw new Error(`${interfaceName} not found in ${file}`);
  const root = { fields: {} };
  const stack = [root];
  for (i += 1; i < lines.length && stack.length; i++) {
    const line = lines[i].trim();
    let match;
    if ((match = /^"([^"]+)"\??: (.*)$/.exec(line))) {
      const [, name, rest] = match;
      const top = stack[stack.length - 1];
      if (rest === "{") {
        top.fields[name] = { fields: {} };
        stack.push(top.fields[name]);
      } else if (rest === "Array<{") {
        top.fields[name] = { items: { fields: {} } };
        stack.push(top.fields[name].items);
      } else if (/^IObjectMeta;/.test(rest)) {
        top.fields[name] = { clientType: "V1ObjectMeta" };
      } else if (/^(\{|Array<)/.test(rest) && !/[;,]$/.test(rest)) {
        // An inline map or union spanning lines: accept anything below it.
        top.fields[name] = {};
        stack.push({ fields: {}, skip: true });
      } else {
        top.fields[name] = {};
      }
    } else if (/^\}/.test(line)) {
      stack.pop();
    } else if (/^\[key: string\]/.test(line)) {
      const top = stack[stack.length - 1];
      delete top.fields;
    }
  }
  return root;
}

const crdTrees = {
  "monitoring.coreos.com/v1/ServiceMonitor": () =>
    treeFromTypings(
      join(packageDir("@kubernetes-models/prometheus-operator"), "monitoring.coreos.com/v1/ServiceMonitor.d.ts"),
      "IServiceMonitor",
    ),
  // From aad-pod-identity's CRDs (deploy/infra/deployment-rbac.yaml, v1.8).
  "aadpodidentity.k8s.io/v1/AzureIdentity": () => ({
    fields: {
      apiVersion: {}, kind: {}, metadata: { clientType: "V1ObjectMeta" }, status: {},
      spec: {
        fields: {
          type: {}, resourceID: {}, clientID: {}, clientPassword: { clientType: "V1SecretReference" },
          tenantID: {}, auxiliaryTenantIDs: { items: {} }, adResourceID: {}, adEndpoint: {}, replicas: {},
        },
      },
    },
  }),
  "aadpodidentity.k8s.io/v1/AzureIdentityBinding": () => ({
    fields: {
      apiVersion: {}, kind: {}, metadata: { clientType: "V1ObjectMeta" }, status: {},
      spec: { fields: { azureIdentity: {}, selector: {}, weight: {} } },
    },
  }),
};

// Checks for the AAD Pod Identity objects that kubernetes-models has no models for.
function aadPodIdentityTypes(object, errors) {
  const spec = object.spec ?? {};
  if (object.kind === "AzureIdentity") {
    if (![0, 1, 2].includes(spec.type)) errors.push("spec.type: must be the integer 0, 1 or 2");
    for (const key of ["resourceID", "clientID"]) {
      if (typeof spec[key] !== "string" || !spec[key]) errors.push(`spec.${key}: required string`);
    }
  } else {
    for (const key of ["azureIdentity", "selector"]) {
      if (typeof spec[key] !== "string" || !spec[key]) errors.push(`spec.${key}: required string`);
    }
  }
}

// Returns the problems of one object as strings ("" prefix-free); [] when valid.
export async function validateObject(object) {
  const errors = [];
  const { apiVersion, kind } = object ?? {};
  if (typeof apiVersion !== "string" || typeof kind !== "string") return ["apiVersion and kind are required"];
  const key = `${apiVersion}/${kind}`;

  if (apiVersion.startsWith("aadpodidentity.k8s.io/")) {
    aadPodIdentityTypes(object, errors);
  } else {
    const Model = await modelClass(apiVersion, kind);
    if (!Model) return [`no schema for ${key}`];
    try {
      new Model(object).validate();
    } catch (error) {
      errors.push(...String(error.message).split("\n").map((l) => l.trim()).filter(Boolean));
    }
  }

  if (crdTrees[key]) {
    walkTree(object, crdTrees[key](), kind, errors);
  } else {
    const type = clientModelName(apiVersion, kind);
    if (!clientModels[type]) return [...errors, `no field map for ${key} (${type})`];
    walkClientType(object, type, kind, errors);
  }
  return errors;
}
