/**
 * ONNX models in the browser and in Node: load (parse + external data), edit as plain objects, serialize,
 * and analyse for quantization. Node-only file access lives in load-node.ts, which this module does not
 * export, so the browser bundle stays free of node: imports.
 */
export * from './model.ts';
export { parseModel, loadModel, type LoadModelOptions } from './load.ts';
export * from './external-data.ts';
export * from './tensor-data.ts';
export * from './serialize.ts';
export * from './build.ts';
export * from './graph-index.ts';
export * from './analyze.ts';
export * from './weight-view.ts';
