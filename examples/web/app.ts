// The browser demo: loads the sentiment example's checkpoint (safetensors) and vocabulary (JSON), classifies
// what the visitor types and draws the attention-pooling weights over the words as an SVG heatmap.
// Built by examples/web/build.mjs into examples/web/out/app.js.
import { init, load, tensor, F, viz, type Tensor } from 'kiln';
import { WordTokenizer, UNK_ID, type TokenizerJSON } from '../tokenizer';
import { SentimentModel, type SentimentConfig } from '../sentiment/model';

interface VocabFile extends TokenizerJSON {
  config: SentimentConfig;
  labels: string[];
}

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

/** Where the checkpoint lives: ?model=<folder URL>, else the sentiment example's output folder. */
function modelBase(): string {
  // Resolved against the page, so a path such as /examples/sentiment/out/smoke/ works as well as a full URL.
  const q = new URLSearchParams(location.search).get('model');
  return new URL(q ?? '../sentiment/out/', location.href).href;
}

async function fetchOk(url: string): Promise<Response> {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}. Train the model first: npm run example -- sentiment`);
  return r;
}

async function start(): Promise<void> {
  const status = $<HTMLParagraphElement>('status');
  const input = $<HTMLInputElement>('text');
  const out = $<HTMLDivElement>('prediction');
  const heat = $<HTMLDivElement>('heatmap');
  const info = await init();
  const base = modelBase();
  const vocab = (await (await fetchOk(new URL('vocab.json', base).href)).json()) as VocabFile;
  const bytes = new Uint8Array(await (await fetchOk(new URL('sentiment.safetensors', base).href)).arrayBuffer());
  const tokenizer = WordTokenizer.fromJSON(vocab);
  const model = new SentimentModel(vocab.config);
  const state = await load(bytes);
  model.loadStateDict(state);
  for (const t of Object.values(state)) t.dispose();
  model.eval();
  status.textContent = `model: ${tokenizer.size} words, ${(bytes.byteLength / 1024).toFixed(0)} KB checkpoint; adapter: ${info.description || info.vendor}${info.isSoftware ? ' (software)' : ''}`;

  let latest = 0;
  let chain: Promise<void> = Promise.resolve();
  const classify = async (text: string, ticket: number) => {
    if (ticket !== latest) return; // a newer keystroke is queued
    const { tokens, ids } = tokenizer.tokenize(text, vocab.config.maxLength);
    if (ids.length === 0) {
      out.textContent = '';
      out.className = '';
      heat.innerHTML = '';
      return;
    }
    const x = tensor(Int32Array.from(ids), { shape: [1, ids.length], dtype: 'i32' });
    const { logits, weights } = model.explain(x);
    const probs: Tensor = F.softmax(logits, -1);
    const [p, w] = await Promise.all([probs.toArray(), weights.toArray()]);
    for (const t of [x, logits, weights, probs]) t.dispose();
    if (ticket !== latest) return;
    const label = p[1]! > p[0]! ? 1 : 0;
    const name = vocab.labels[label]!;
    out.textContent = `${name} (${(100 * p[label]!).toFixed(1)}%)`;
    out.className = name;
    out.dataset.label = name;
    out.dataset.probability = String(p[label]);
    const words = tokens.map((t, j) => (ids[j] === UNK_ID ? `${t}?` : t));
    heat.innerHTML = viz.heatmapSVG({ rows: 1, cols: w.length, data: Array.from(w) }, { colLabels: words, rowLabels: [name], min: 0, cell: 30, showValues: w.length <= 24, title: 'attention over the words' });
  };
  const schedule = () => {
    const ticket = ++latest;
    const text = input.value;
    chain = chain.then(() => classify(text, ticket)).catch((e) => {
      status.textContent = `error: ${(e as Error).message}`;
    });
  };
  input.addEventListener('input', schedule);
  input.disabled = false;
  input.focus();
  if (input.value) schedule();
  document.body.dataset.ready = '1';
}

start().catch((e) => {
  $<HTMLParagraphElement>('status').textContent = `error: ${(e as Error).message ?? e}`;
  document.body.dataset.error = String((e as Error).message ?? e);
  console.error(e);
});
