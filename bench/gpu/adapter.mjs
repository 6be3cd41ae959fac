// One-line Dawn adapter check (used by remote.sh diagnostics): prints the adapter it gets, exit 1 if none.
import { create } from 'webgpu';
const a = await create([]).requestAdapter({ powerPreference: 'high-performance' });
if (!a) { console.log('adapter: NONE'); process.exit(1); }
const i = a.info;
console.log(`adapter: vendor=${i.vendor} arch=${i.architecture} device=${i.device} desc="${i.description}" fallback=${i.isFallbackAdapter}`);
process.exit(0);
