/**
 * Saving and loading in the TF.js layers format from Node without tfjs-node.
 *
 * `model.save('file:///dir')` writes dir/model.json + dir/weights.bin and
 * `tfl.loadLayersModel('file:///dir/model.json')` reads them back: the layout tfjs-node
 * uses, so the same calls and files work with or without it. When tfjs-node is loaded it
 * registers its own `file://` router and ours stands aside.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { writeFileAtomic } from './atomic-file.ts';
import * as tf from './tf.ts';

export { writeFileAtomic };

const SCHEME = 'file://';

export interface NamedTensor {
  name: string;
  tensor: tf.Tensor;
}

function stripScheme(url: string): string {
  return url.startsWith(SCHEME) ? url.slice(SCHEME.length) : url;
}

function toBytes(data: tf.io.WeightData | undefined): Uint8Array {
  if (data == null) return new Uint8Array(0);
  const buffer = Array.isArray(data) ? tf.io.concatenateArrayBuffers(data) : data;
  return new Uint8Array(buffer);
}

class FileSaver implements tf.io.IOHandler {
  constructor(private readonly dir: string) {}

  async save(artifacts: tf.io.ModelArtifacts): Promise<tf.io.SaveResult> {
    if (artifacts.modelTopology instanceof ArrayBuffer) {
      throw new Error('file:// saving supports the layers format (JSON topology) only');
    }
    const weights = toBytes(artifacts.weightData);
    writeFileAtomic(join(this.dir, 'weights.bin'), weights);
    const json: tf.io.ModelJSON = {
      modelTopology: artifacts.modelTopology!,
      format: artifacts.format,
      generatedBy: artifacts.generatedBy,
      convertedBy: artifacts.convertedBy,
      weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs ?? [] }],
    };
    if (artifacts.trainingConfig) json.trainingConfig = artifacts.trainingConfig;
    if (artifacts.userDefinedMetadata) json.userDefinedMetadata = artifacts.userDefinedMetadata;
    // model.json last: a directory with a model.json is a complete model.
    writeFileAtomic(join(this.dir, 'model.json'), JSON.stringify(json));
    return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
  }
}

class FileLoader implements tf.io.IOHandler {
  constructor(private readonly path: string) {}

  async load(): Promise<tf.io.ModelArtifacts> {
    const jsonPath = this.path.endsWith('.json') ? this.path : join(this.path, 'model.json');
    let json: tf.io.ModelJSON;
    try {
      json = JSON.parse(readFileSync(jsonPath, 'utf8'));
    } catch (err) {
      throw new Error(`cannot read model ${jsonPath}: ${(err as Error).message}`);
    }
    const dir = dirname(jsonPath);
    return tf.io.getModelArtifactsForJSON(json, async (manifest) => {
      const specs: tf.io.WeightsManifestEntry[] = [];
      const buffers: ArrayBuffer[] = [];
      for (const group of manifest) {
        specs.push(...group.weights);
        for (const p of group.paths) {
          const b = readFileSync(join(dir, p));
          buffers.push(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer);
        }
      }
      return [specs, tf.io.concatenateArrayBuffers(buffers)];
    });
  }
}

let registered = false;

/** Registers the `file://` router unless one (tfjs-node's) already answers. */
export function registerFileRouter(): void {
  if (registered) return;
  registered = true;
  if (tf.io.getSaveHandlers('file:///probe').length > 0) return;
  // A router answers null for URLs that are not its own (the typings say otherwise).
  const route = (make: (path: string) => tf.io.IOHandler) => ((url: string | string[]) => {
    const u = Array.isArray(url) ? url[0] : url;
    return u.startsWith(SCHEME) ? make(stripScheme(u)) : null;
  }) as unknown as Parameters<typeof tf.io.registerSaveRouter>[0];
  tf.io.registerSaveRouter(route((p) => new FileSaver(p)));
  tf.io.registerLoadRouter(route((p) => new FileLoader(p)));
}

export function fileUrl(path: string): string {
  return SCHEME + path;
}

/** Saves named tensors (optimizer state) as `<name>.json` (specs) + `<name>.bin`. */
export async function saveNamedTensors(dir: string, name: string, tensors: NamedTensor[]): Promise<void> {
  const { data, specs } = await tf.io.encodeWeights(tensors);
  writeFileAtomic(join(dir, `${name}.bin`), new Uint8Array(data));
  writeFileAtomic(join(dir, `${name}.json`), JSON.stringify(specs));
}

export function loadNamedTensors(dir: string, name: string): NamedTensor[] {
  const specs = JSON.parse(readFileSync(join(dir, `${name}.json`), 'utf8')) as tf.io.WeightsManifestEntry[];
  const b = readFileSync(join(dir, `${name}.bin`));
  const map = tf.io.decodeWeights(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer, specs);
  return specs.map((s) => ({ name: s.name, tensor: map[s.name] }));
}
