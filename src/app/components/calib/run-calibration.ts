/**
 * Starts and cancels a calibration from the Calibrate page: reads the chosen files, calls the model engine,
 * streams its progress into the calib slice and stores the run only when it finished. A cancelled, failed or
 * superseded run leaves the previous result in place, so nothing half-done is ever shown as a result.
 */
import type { ImagePreset } from '../../../calib/image-preprocess.ts';
import type { CalibDataSource, CalibMethod, CalibrateRequest } from '../../../calib/types.ts';
import { putCalibration } from '../../engine/calibration-cache.ts';
import { isCancelled } from '../../engine/gpu-client.ts';
import type { ModelEngine } from '../../engine/model-engine.ts';
import type { AppStore } from '../../store/index.ts';
import type { CalibSourceKind } from './calib-data.ts';

export interface CalibrationStart {
  source: CalibSourceKind;
  /** The user's files, for the text-files and image-files sources. */
  files: File[];
  samples: number;
  seqLen?: number;
  bits: number;
  method: CalibMethod;
  /** Image preprocessing of ONNX models; undefined = what the model's input implies. */
  preset?: ImagePreset;
  /** calibModelKey of the open model: the run is shown only while that model is open. */
  modelKey: string;
}

/** Which start the store is following; a result or error from an older one is dropped. */
let current = 0;

async function readFiles(files: File[]): Promise<{ name: string; bytes: Uint8Array }[]> {
  return Promise.all(files.map(async (f) => ({ name: f.name, bytes: new Uint8Array(await f.arrayBuffer()) })));
}

function dataSource(kind: CalibSourceKind, files: { name: string; bytes: Uint8Array }[]): CalibDataSource {
  switch (kind) {
    case 'text-files':
      return { kind, files };
    case 'image-files':
      return { kind, files };
    default:
      return { kind };
  }
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export async function startCalibration(engine: ModelEngine, store: AppStore, start: CalibrationStart): Promise<void> {
  const token = ++current;
  const patch = store.getState().patchCalib;
  const live = () => token === current;
  patch({ op: { status: 'running', progress: { phase: 'data', done: 0, total: 1, label: start.files.length ? `reading ${start.files.length} file(s)` : 'starting' } } });
  try {
    const files = start.source === 'text-files' || start.source === 'image-files' ? await readFiles(start.files) : [];
    if (!live()) return;
    const request: CalibrateRequest = {
      data: dataSource(start.source, files),
      samples: start.samples,
      seqLen: start.seqLen,
      bits: start.bits,
      method: start.method,
      preset: start.preset,
    };
    const run = await engine.calibrate(request, (progress) => {
      if (live()) patch({ op: { status: 'running', progress } });
    });
    if (!live()) return;
    const before = store.getState().calib.selected;
    const keep = run.result.tensors.some((t) => t.name === before);
    patch({ runVersion: putCalibration(run), runFor: start.modelKey, selected: keep ? before : run.result.tensors[0]?.name, op: { status: 'done' } });
  } catch (e) {
    if (!live()) return;
    patch({ op: isCancelled(e) ? { status: 'cancelled' } : { status: 'error', error: errorText(e) } });
  }
}

/** Stops following the running calibration at once and asks the engine to stop it. */
export function cancelCalibration(engine: ModelEngine, store: AppStore): void {
  if (store.getState().calib.op.status !== 'running') return;
  current++;
  engine.cancelCalibration();
  store.getState().patchCalib({ op: { status: 'cancelled' } });
}
