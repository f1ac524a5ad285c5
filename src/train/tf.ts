/**
 * The one TensorFlow.js entry point of the project: tfjs-core with its chained tensor
 * methods registered (see chained-ops.ts) and tfjs-layers. tfjs-core's Node bundle already
 * registers every gradient.
 */
import { registerChainedOps } from './chained-ops.ts';

registerChainedOps();

export * from '@tensorflow/tfjs-core';
export * as tfl from '@tensorflow/tfjs-layers';
