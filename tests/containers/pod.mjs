// Turns `helm template` output (stdin) into what Debian 12's podman (4.3) runs with
// `podman kube play --network=none`, in OUT_DIR:
//   pod.yaml      the Deployment's pod template as a Pod with restartPolicy Never (easier to tear
//                 down than a Deployment); Service, ServiceAccount and the `helm test` pod have no
//                 meaning for podman and are left out;
//   secrets/VOL/  each Secret volume as Kubernetes mounts it (the selected items, files of
//                 defaultMode owned by root and the pod's fsGroup), mounted as a hostPath: podman
//                 4.3 crashes on Secret volumes (podman issue 16636: a nil `optional` is
//                 dereferenced, and `optional: true` ignores the Secret; fixed in 4.4);
//   volumes.tsv   NAME, SIZE_BYTES, GID of each emptyDir with medium Memory: run creates them as
//                 tmpfs volumes the way Kubernetes makes emptyDirs (mode 2777, group fsGroup)
//                 before kube play; podman 4.3 would make a disk directory owned by the first
//                 container's user, mode 0755, where the broker cannot create its socket.
// Ports are dropped and the probes' named ports become numbers: with --network=none podman
// refuses port mappings, and containerPort alone would make one.
//   node pod.mjs OUT_DIR < rendered.yaml
import { chmodSync, chownSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
// js-yaml comes with the chart tests' node_modules (tests/chart/package.json).
const require = createRequire(path.join(here, '../chart/package.json'));
const yaml = require('js-yaml');

const fail = (message) => {
  console.error(`pod.mjs: ${message}`);
  process.exit(1);
};
const outDir = process.argv[2];
if (!outDir) {
  console.error('usage: node pod.mjs OUT_DIR < rendered.yaml');
  process.exit(2);
}

const docs = yaml.loadAll(readFileSync(0, 'utf8')).filter(Boolean);
const deployments = docs.filter((d) => d.kind === 'Deployment');
if (deployments.length !== 1) fail(`expected one Deployment, got ${deployments.length}`);
const deployment = deployments[0];
const template = deployment.spec.template;
const spec = structuredClone({ ...template.spec, restartPolicy: 'Never' });
const fsGroup = spec.securityContext?.fsGroup ?? 0;

// Kubernetes quantities as sizeLimit uses them.
const bytes = (quantity) => {
  const m = /^(\d+)(Ki|Mi|Gi|k|M|G)?$/.exec(String(quantity));
  if (!m) fail(`cannot read the quantity ${quantity}`);
  const unit = { Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, k: 1e3, M: 1e6, G: 1e9 }[m[2]] ?? 1;
  return Number(m[1]) * unit;
};

const memoryVolumes = [];
spec.volumes = (spec.volumes ?? []).map((volume) => {
  if (volume.emptyDir?.medium === 'Memory') {
    const size = volume.emptyDir.sizeLimit ? bytes(volume.emptyDir.sizeLimit) : 64 * 1024 ** 2;
    memoryVolumes.push(`${volume.name}\t${size}\t${fsGroup}\n`);
    return volume;
  }
  if (!volume.secret) return volume;
  const source = volume.secret;
  const secret = docs.find((d) => d.kind === 'Secret' && d.metadata.name === source.secretName);
  if (!secret) fail(`the pod mounts Secret ${source.secretName}, which the chart did not render`);
  const data = {};
  for (const [k, v] of Object.entries(secret.stringData ?? {})) data[k] = Buffer.from(v);
  for (const [k, v] of Object.entries(secret.data ?? {})) data[k] = Buffer.from(v, 'base64');
  const items = source.items ?? Object.keys(data).map((key) => ({ key, path: key }));
  const dir = path.join(outDir, 'secrets', volume.name);
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o755);
  for (const item of items) {
    if (!(item.key in data)) fail(`Secret ${source.secretName} has no key ${item.key}`);
    const file = path.join(dir, item.path);
    writeFileSync(file, data[item.key]);
    chmodSync(file, item.mode ?? source.defaultMode ?? 0o644);
    if (process.getuid() === 0) chownSync(file, 0, fsGroup);
  }
  return { name: volume.name, hostPath: { path: dir, type: 'Directory' } };
});

for (const container of [...(spec.initContainers ?? []), ...spec.containers]) {
  const byName = Object.fromEntries(
    (container.ports ?? []).filter((p) => p.name).map((p) => [p.name, p.containerPort]),
  );
  for (const probe of ['startupProbe', 'livenessProbe', 'readinessProbe']) {
    const action = container[probe]?.httpGet ?? container[probe]?.tcpSocket;
    if (action && typeof action.port === 'string') {
      if (!(action.port in byName)) {
        fail(`${container.name}'s ${probe} names port ${action.port}, which it does not declare`);
      }
      action.port = byName[action.port];
    }
  }
  delete container.ports;
}

const pod = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: {
    name: deployment.metadata.name,
    labels: template.metadata?.labels ?? {},
    ...(template.metadata?.annotations ? { annotations: template.metadata.annotations } : {}),
  },
  spec,
};
mkdirSync(outDir, { recursive: true });
writeFileSync(path.join(outDir, 'pod.yaml'), yaml.dump(pod, { lineWidth: -1, noRefs: true }));
writeFileSync(path.join(outDir, 'volumes.tsv'), memoryVolumes.join(''));
