/**
 * Loaders for the small real data sets vendored under `data/` (see
 * `data/README.md` and each folder's README for source, version, licence and
 * citation). Node only: they read files with `node:fs` and `node:zlib`, and
 * resolve paths relative to this file, so they work from any working
 * directory as long as `examples/` and `data/` stay siblings.
 *
 * Every loader is synchronous except `loadFashionMnist`, which may need to
 * download a Debian package the first time it runs. Results are not cached in
 * memory: call once and keep the value.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';

/** Absolute path of a file under `data/`, resolved from this module's URL. */
function dataPath(rel: string): string {
  return fileURLToPath(new URL(`../data/${rel}`, import.meta.url));
}

function readText(rel: string): string {
  const buf = readFileSync(dataPath(rel));
  return (rel.endsWith('.gz') ? gunzipSync(buf) : buf).toString('utf8');
}

/** Lines of a text file, without a trailing empty line and with CR removed. */
function lines(text: string): string[] {
  const out = text.split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
  while (out.length > 0 && out[out.length - 1] === '') out.pop();
  return out;
}

// ---------------------------------------------------------------------------
// Text classification

export type SentimentSource = 'amazon' | 'imdb' | 'yelp';

export interface SentimentExample {
  /** The review sentence, verbatim (some IMDb ones keep trailing spaces). */
  text: string;
  /** 1 positive, 0 negative. */
  label: 0 | 1;
  source: SentimentSource;
}

/**
 * UCI Sentiment Labelled Sentences (Kotzias et al., KDD 2015; CC BY 4.0):
 * 3,000 sentences, 1,000 per source, 500 positive and 500 negative in each.
 * Returned in file order (all amazon, then imdb, then yelp): shuffle before
 * splitting into train and test.
 */
export function loadSentiment(): SentimentExample[] {
  const rows = lines(readText('sentiment/sentences.tsv'));
  if (rows[0] !== 'text\tlabel\tsource') throw new Error('sentiment: unexpected header');
  return rows.slice(1).map((row, i) => {
    const [text, label, source] = row.split('\t');
    if (
      text === undefined ||
      (label !== '0' && label !== '1') ||
      (source !== 'amazon' && source !== 'imdb' && source !== 'yelp')
    ) {
      throw new Error(`sentiment: malformed row ${i + 2}`);
    }
    return { text, label: label === '1' ? 1 : 0, source };
  });
}

// ---------------------------------------------------------------------------
// Small images

export interface Digits {
  /** n*64 pixel values, row-major 8x8 per image, integers 0..16 stored as float. */
  pixels: Float32Array;
  /** n class labels, 0..9. */
  labels: Int32Array;
  n: number;
}

/**
 * UCI optical handwritten digits (scikit-learn's copy; CC BY 4.0): 1,797
 * images of 8x8 pixels with values 0..16, 10 classes (174 to 183 each).
 * The CSV has no header; the 65th column is the label.
 */
export function loadDigits(): Digits {
  const rows = lines(readText('digits/digits.csv.gz'));
  const n = rows.length;
  const pixels = new Float32Array(n * 64);
  const labels = new Int32Array(n);
  rows.forEach((row, i) => {
    const cols = row.split(',');
    if (cols.length !== 65) throw new Error(`digits: row ${i + 1} has ${cols.length} columns, expected 65`);
    for (let j = 0; j < 64; j++) pixels[i * 64 + j] = Number(cols[j]);
    labels[i] = Number(cols[64]);
  });
  return { pixels, labels, n };
}

// ---------------------------------------------------------------------------
// Time series

/** Yearly sunspot numbers 1700..2008 (309 values, none missing; public domain). */
export function loadSunspots(): { year: number[]; value: number[] } {
  const rows = lines(readText('sunspots/sunspots.csv'));
  if (rows[0] !== '"YEAR","SUNACTIVITY"') throw new Error('sunspots: unexpected header');
  const year: number[] = [];
  const value: number[] = [];
  for (const row of rows.slice(1)) {
    const [y, v] = row.split(',');
    year.push(Number(y));
    value.push(Number(v));
  }
  return { year, value };
}

export interface CO2Options {
  /**
   * What to do with the 59 weeks that have no measurement:
   * - `'interpolate'` (default): fill each from its two nearest measured
   *   neighbours by linear interpolation in time, keeping a regular weekly
   *   grid of 2,284 points (every gap is interior, so no extrapolation);
   * - `'drop'`: leave those weeks out (2,225 points, no longer evenly spaced).
   */
  missing?: 'interpolate' | 'drop';
}

/**
 * Mauna Loa weekly CO2 in ppmv, 1958-03-29 to 2001-12-29 (public domain;
 * Keeling and Whorf 2004). `date` is ISO `YYYY-MM-DD`; weeks are 7 days apart.
 * Missing weeks are linearly interpolated unless `{ missing: 'drop' }`.
 */
export function loadCO2(options: CO2Options = {}): { date: string[]; value: number[] } {
  const missing = options.missing ?? 'interpolate';
  const rows = lines(readText('co2/co2.csv'));
  if (rows[0] !== 'date,co2') throw new Error('co2: unexpected header');
  const date: string[] = [];
  const raw: (number | null)[] = [];
  for (const row of rows.slice(1)) {
    const [d, v] = row.split(',');
    if (d === undefined || !/^\d{8}$/.test(d)) throw new Error(`co2: bad date ${d}`);
    date.push(`${d.slice(0, 4)}-${d.slice(4, 6)}-${d.slice(6, 8)}`);
    raw.push(v === undefined || v === '' ? null : Number(v));
  }
  if (missing === 'drop') {
    const keep = raw.map((v, i) => (v === null ? -1 : i)).filter((i) => i >= 0);
    return { date: keep.map((i) => date[i]!), value: keep.map((i) => raw[i]!) };
  }
  // Weeks are evenly spaced, so interpolating by index is interpolating in time.
  const value = new Array<number>(raw.length);
  let prev = -1;
  for (let i = 0; i < raw.length; i++) {
    const v = raw[i];
    if (v === null || v === undefined) continue;
    value[i] = v;
    if (prev >= 0 && i - prev > 1) {
      const a = raw[prev]!;
      for (let k = prev + 1; k < i; k++) value[k] = a + ((v - a) * (k - prev)) / (i - prev);
    } else if (prev < 0 && i > 0) {
      throw new Error('co2: series starts with missing values');
    }
    prev = i;
  }
  if (prev !== raw.length - 1) throw new Error('co2: series ends with missing values');
  return { date, value };
}

// ---------------------------------------------------------------------------
// Character-level text

/**
 * Moby-Dick (Melville; CC0 / PDDL), chapter 1 through the epilogue, as one
 * string: 1,190,317 characters, 83 distinct (includes em dashes and curly
 * quotes), lines hard-wrapped with `\n`.
 */
export function loadMobyDick(): string {
  return readText('mobydick/data.txt.gz');
}

// ---------------------------------------------------------------------------
// Token tagging

export interface TaggedSentence {
  words: string[];
  /** Brown tags, lower case as in the corpus (`np`, `nn-tl`, `np$`, `vbd`...). */
  tags: string[];
  /** Source document, `ca01` .. `ca44`. */
  doc: string;
}

/**
 * Brown Corpus news section (ca01..ca44): 4,623 sentences, 100,554 tokens.
 *
 * Sentence splitting is the corpus's own: in the original files each
 * non-blank line is one sentence (headlines such as `Merger/nn-hl
 * proposed/vbn-hl` count as sentences), and `data/brown/news.txt.gz` keeps one
 * line per sentence. Each whitespace-separated token `word/TAG` is split at
 * its last `/`, since a few words contain slashes (`1-1/2/cd`).
 * Split train/test by `doc` to keep articles from leaking across.
 */
export function loadBrownNews(): TaggedSentence[] {
  const out: TaggedSentence[] = [];
  let doc = '';
  for (const line of lines(readText('brown/news.txt.gz'))) {
    if (line.startsWith('# ')) {
      doc = line.slice(2);
      continue;
    }
    if (line === '') continue;
    const words: string[] = [];
    const tags: string[] = [];
    for (const tok of line.split(' ')) {
      const at = tok.lastIndexOf('/');
      if (at <= 0 || at === tok.length - 1) throw new Error(`brown: bad token ${JSON.stringify(tok)} in ${doc}`);
      words.push(tok.slice(0, at));
      tags.push(tok.slice(at + 1));
    }
    out.push({ words, tags, doc });
  }
  return out;
}

// ---------------------------------------------------------------------------
// Fashion-MNIST (downloaded on demand, not vendored)

export interface FashionMnist {
  /** n*784 pixels, row-major 28x28 per image, 0..255. */
  pixels: Uint8Array;
  /** n labels 0..9 (see FASHION_MNIST_CLASSES). */
  labels: Uint8Array;
  n: number;
}

export const FASHION_MNIST_CLASSES = [
  'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat',
  'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot',
] as const;

export interface FashionMnistOptions {
  /** `'test'` (default): 10,000 images. `'train'`: 60,000 images. */
  split?: 'test' | 'train';
  /**
   * Where to keep the extracted package. Default: `$KILN_DATA_CACHE`, else
   * `$XDG_CACHE_HOME/kiln`, else `~/.cache/kiln`; files go in `fashion-mnist/`.
   */
  cacheDir?: string;
}

const FASHION_PKG = 'dataset-fashion-mnist';
const FASHION_DIR = join('usr', 'share', 'datasets', 'fashion-mnist');

function defaultCacheDir(): string {
  const env = process.env;
  if (env.KILN_DATA_CACHE) return env.KILN_DATA_CACHE;
  if (env.XDG_CACHE_HOME) return join(env.XDG_CACHE_HOME, 'kiln');
  return join(homedir(), '.cache', 'kiln');
}

function hasCommand(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Run `apt-get download` + `dpkg -x` into `dir` unless already extracted. */
function fetchFashionPackage(dir: string): string {
  const dataDir = join(dir, FASHION_DIR);
  if (existsSync(join(dataDir, 't10k-labels-idx1-ubyte.gz'))) return dataDir;
  for (const cmd of ['apt-get', 'dpkg']) {
    if (!hasCommand(cmd)) {
      throw new Error(
        `loadFashionMnist: '${cmd}' is not available. Fashion-MNIST is not vendored; it is fetched from the ` +
          `Debian package '${FASHION_PKG}' with apt-get download + dpkg -x, which needs a Debian/Ubuntu system. ` +
          `Alternatively place t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz in ${dataDir}.`,
      );
    }
  }
  mkdirSync(dir, { recursive: true });
  const run = () => execFileSync('apt-get', ['download', FASHION_PKG], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  try {
    run();
  } catch (e) {
    const msg = String((e as { stderr?: Buffer }).stderr ?? e);
    throw new Error(
      `loadFashionMnist: 'apt-get download ${FASHION_PKG}' failed in ${dir}. If the package cannot be located, ` +
        `run 'apt-get update' first (needs a reachable Debian mirror).\n${msg.trim()}`,
    );
  }
  const deb = readdirSync(dir).find((f) => f.startsWith(`${FASHION_PKG}_`) && f.endsWith('.deb'));
  if (!deb) throw new Error(`loadFashionMnist: apt-get download left no ${FASHION_PKG}_*.deb in ${dir}`);
  execFileSync('dpkg', ['-x', join(dir, deb), dir], { stdio: ['ignore', 'ignore', 'pipe'] });
  rmSync(join(dir, deb)); // 30.9 MB; the extracted files are all we need
  if (!existsSync(join(dataDir, 't10k-labels-idx1-ubyte.gz'))) {
    throw new Error(`loadFashionMnist: ${deb} did not contain ${FASHION_DIR}/t10k-labels-idx1-ubyte.gz`);
  }
  return dataDir;
}

/** Parse a gzipped IDX file (big-endian): magic 2049 = 1-D uint8, 2051 = 3-D uint8. */
function readIdx(path: string, magic: 2049 | 2051): { data: Uint8Array; dims: number[] } {
  const buf = gunzipSync(readFileSync(path));
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const got = view.getUint32(0, false);
  if (got !== magic) throw new Error(`${path}: IDX magic ${got}, expected ${magic}`);
  const ndim = got & 0xff;
  const dims: number[] = [];
  for (let i = 0; i < ndim; i++) dims.push(view.getUint32(4 + 4 * i, false));
  const offset = 4 + 4 * ndim;
  const size = dims.reduce((a, b) => a * b, 1);
  if (buf.byteLength !== offset + size) throw new Error(`${path}: ${buf.byteLength} bytes, expected ${offset + size}`);
  return { data: new Uint8Array(buf.buffer, buf.byteOffset + offset, size), dims };
}

/**
 * Fashion-MNIST (Xiao et al. 2017; MIT, Zalando SE). Not vendored: the first
 * call runs `apt-get download dataset-fashion-mnist` (a 30.9 MB .deb holding
 * both splits) into the cache directory and unpacks it with `dpkg -x`; later
 * calls read the extracted files. Throws a clear error where apt-get or dpkg
 * is missing or the download fails.
 *
 * Default split `'test'`: 10,000 images of 28x28 uint8, 1,000 per class.
 */
export async function loadFashionMnist(options: FashionMnistOptions = {}): Promise<FashionMnist> {
  const split = options.split ?? 'test';
  const dir = join(options.cacheDir ?? defaultCacheDir(), 'fashion-mnist');
  const dataDir = fetchFashionPackage(dir);
  const prefix = split === 'test' ? 't10k' : 'train';
  const images = readIdx(join(dataDir, `${prefix}-images-idx3-ubyte.gz`), 2051);
  const labels = readIdx(join(dataDir, `${prefix}-labels-idx1-ubyte.gz`), 2049);
  const n = labels.dims[0]!;
  if (images.dims[0] !== n || images.dims[1] !== 28 || images.dims[2] !== 28) {
    throw new Error(`fashion-mnist: image dims ${images.dims.join('x')} do not match ${n} labels of 28x28`);
  }
  return { pixels: images.data, labels: labels.data, n };
}
