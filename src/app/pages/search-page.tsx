/**
 * The AWQ & SmoothQuant page: the two calibration-driven searches of a Llama-family model. AWQ searches, group by
 * group, the per-channel scales that protect the weights multiplying large activations (and the clip thresholds),
 * shows every search's loss against the ratio and each block's error against RTN as the blocks finish, can be
 * cancelled and resumed, and generates with its weights. SmoothQuant sweeps alpha and shows how the W8A8 error and
 * the difficulty move between activations and weights.
 */
import { useMemo, useState } from 'react';
import { useModelEngine } from '../engine-context.ts';
import { getAwqBlocks, getAwqRun, getSmoothRun } from '../engine/search-cache.ts';
import { calibModelInfo, calibModelKey } from '../components/calib/calib-data.ts';
import { OpStatus } from '../components/model/op-status.tsx';
import { Segmented } from '../components/segmented.tsx';
import { AwqBlockErrors, AwqBlockSteps, AwqGenerate, AwqGroupCharts, AwqGroupPicker, AwqLinearTable, AwqLossHeatmap, type AwqView } from '../components/search/awq-views.tsx';
import { cancelAwq, cancelSmooth } from '../components/search/run-search.ts';
import { AwqForm, SmoothForm } from '../components/search/search-forms.tsx';
import { awqGroupKey } from '../components/search/search-data.ts';
import { SmoothDifficultyChart, SmoothSummary, SmoothSweepChart, SmoothTable } from '../components/search/smooth-views.tsx';
import { useAppStore } from '../store/index.ts';

function AwqResults({ nLayers, modelKey, canGenerate, disabled }: { nLayers: number; modelKey: string; canGenerate: boolean; disabled: boolean }) {
  const s = useAppStore((st) => st.search);
  const engine = useModelEngine();
  const run = s.awqFor === modelKey ? getAwqRun(s.awqVersion) : undefined;
  const partial = getAwqBlocks(s.awqBlocksVersion);
  const partialMine = s.awqBlocksKey !== undefined && JSON.parse(s.awqBlocksKey)[0] === modelKey;
  const running = s.awqOp.status === 'running';
  // While a run goes on, or after one stopped half-way, its blocks are shown, marked unfinished; otherwise the last finished run.
  const stopped = s.awqOp.status === 'cancelled' || s.awqOp.status === 'error' || !run;
  const showPartial = partialMine && (running || (stopped && partial.length > 0));
  const view: AwqView | undefined = useMemo(() => {
    if (showPartial) {
      return {
        groups: partial.flatMap((p) => p.groups),
        linears: partial.flatMap((p) => p.linears),
        blocks: partial.map((p) => p.block),
        nLayers,
        kept: new Set(partial.filter((p) => p.kept).map((p) => p.block.block)),
      };
    }
    return run ? { groups: run.groups, linears: run.linears, blocks: run.blocks, nLayers: run.nLayers, kept: new Set<number>() } : undefined;
  }, [showPartial, partial, run, nLayers]);
  const group = view?.groups.find((g) => awqGroupKey(g) === s.awqGroup) ?? view?.groups[0];
  const complete = !showPartial && !!run;
  return (
    <>
      <OpStatus
        op={s.awqOp}
        verb="AWQ"
        done={run ? `AWQ done: ${run.blocks.length} blocks on ${run.data.tokens} tokens of ${run.data.source} in ${run.seconds.toFixed(1)} s${run.resumedBlocks ? ` (${run.resumedBlocks} kept from the earlier run)` : ''}` : undefined}
        onCancel={() => cancelAwq(engine, useAppStore)}
        testId="awq-status"
      />
      {(running || view) && <AwqBlockSteps view={view ?? { groups: [], linears: [], blocks: [], nLayers, kept: new Set() }} running={running} />}
      {showPartial && !running && (
        <p className="warn" data-testid="awq-unfinished">
          This run stopped after {partial.length} of {nLayers} blocks: what is shown is unfinished. Resume keeps the finished blocks and searches the rest.
          {run ? ' The last finished run is kept for generation.' : ''}
        </p>
      )}
      {view && view.blocks.length > 0 ? (
        <>
          <AwqBlockErrors view={view} complete={complete} />
          <AwqLossHeatmap view={view} />
          {group && (
            <section className="card compact" data-testid="awq-group-panel">
              <AwqGroupPicker view={view} />
            </section>
          )}
          {group && <AwqGroupCharts group={group} />}
          <AwqLinearTable linears={view.linears} />
          {complete && s.awqVersion !== undefined && <AwqGenerate runVersion={s.awqVersion} canGenerate={canGenerate} disabled={disabled} />}
        </>
      ) : (
        !running && (
          <section className="card placeholder" data-testid="awq-empty">
            <p className="muted">Choose the calibration text and the quantizer, then Run AWQ. Each block's searches appear here as it finishes.</p>
          </section>
        )
      )}
    </>
  );
}

function SmoothResults({ modelKey }: { modelKey: string }) {
  const s = useAppStore((st) => st.search);
  const engine = useModelEngine();
  const run = s.smoothFor === modelKey ? getSmoothRun(s.smoothVersion) : undefined;
  return (
    <>
      <OpStatus op={s.smoothOp} verb="SmoothQuant" done={run ? `SmoothQuant done in ${run.report.seconds.toFixed(1)} s` : undefined} onCancel={() => cancelSmooth(engine, useAppStore)} testId="smooth-status" />
      {run ? (
        <>
          <SmoothSummary report={run.report} />
          {run.sweeps.length > 0 && run.sweeps[0].points.length > 1 && <SmoothSweepChart report={run.report} sweeps={run.sweeps} />}
          <SmoothDifficultyChart sweeps={run.sweeps} report={run.report} />
          <SmoothTable report={run.report} />
        </>
      ) : (
        s.smoothOp.status !== 'running' && (
          <section className="card placeholder" data-testid="smooth-empty">
            <p className="muted">Choose the calibration text and alpha, then Run SmoothQuant. The sweep, the difficulty chart and the table appear here.</p>
          </section>
        )
      )}
    </>
  );
}

export function SearchPage() {
  const d = useAppStore((s) => s.model.description);
  const deviceStatus = useAppStore((s) => s.device.status);
  const tab = useAppStore((s) => s.search.tab);
  const patch = useAppStore((s) => s.patchSearch);
  const [files, setFiles] = useState<File[]>([]);
  const info = useMemo(() => (d ? calibModelInfo(d) : undefined), [d]);
  const key = d ? calibModelKey(d) : '';
  const disabled = deviceStatus !== 'ready';
  return (
    <div className="search-page" data-testid="page-awq">
      <div className="page-intro">
        <h2>AWQ &amp; SmoothQuant</h2>
        <p>
          Two ways to let calibration data steer quantization. AWQ (weight-only, INT4 and lower) searches per-channel scales that protect the weights multiplying large
          activations, and clip thresholds, block by block. SmoothQuant (W8A8) divides activation outliers out of the activations and into the weights.
        </p>
      </div>
      {!d || !info ? (
        <section className="card" data-testid="no-model">
          <p>
            No model is open yet. <a href="#/model">Choose one on the Model page</a>: stories15M, or your own llama2.c, GGUF or safetensors checkpoint.
          </p>
        </section>
      ) : info.kind !== 'llama' ? (
        <section className="card" data-testid="search-onnx">
          <p>
            {d.name} is an ONNX graph. In the lab, AWQ and SmoothQuant run on Llama-family checkpoints, whose attention and MLP the WGSL forward pass can run with
            candidate weights. For ONNX graphs with LayerNorm → MatMul groups use the command line: <code>quantlab smoothquant</code> and <code>quantlab awq</code>.
          </p>
        </section>
      ) : (
        <>
          <div className="search-tabs">
            <Segmented
              label="Method"
              value={tab}
              options={[
                { value: 'awq', label: 'AWQ (weight-only)' },
                { value: 'smoothquant', label: 'SmoothQuant (W8A8)' },
              ]}
              onChange={(t) => patch({ tab: t })}
            />
          </div>
          <div className="playground-grid">
            <aside className="controls">
              {tab === 'awq' ? (
                <AwqForm info={info} modelKey={key} disabled={disabled} files={files} setFiles={setFiles} />
              ) : (
                <SmoothForm info={info} modelKey={key} disabled={disabled} files={files} setFiles={setFiles} />
              )}
            </aside>
            <div className="results">
              {tab === 'awq' ? (
                <AwqResults nLayers={d.llama?.config.nLayers ?? 0} modelKey={key} canGenerate={d.llama?.canGenerate ?? false} disabled={disabled} />
              ) : (
                <SmoothResults modelKey={key} />
              )}
            </div>
          </div>
        </>
      )}
    </div>
  );
}
