import { describe, expect, it } from 'vitest';
import { decode } from 'fast-png';
import { viz, F, randn, ShapeError } from '../../src/index.node';
import { colorAt } from '../../src/viz/heatmap';

describe('viz heatmaps', () => {
  it('SVG: one cell per weight, labels escaped, colours ordered by value', () => {
    const svg = viz.heatmapSVG({ rows: 2, cols: 3, data: [0, 0.5, 1, 0.25, 0.75, 0] }, { rowLabels: ['a<b', 'c'], colLabels: ['x', 'y', 'z'], title: 'attn' });
    expect(svg.startsWith('<svg')).toBe(true);
    expect((svg.match(/<rect x=/g) ?? []).length).toBe(6);
    expect(svg).toContain('a&#60;b');
    expect(svg).toContain('rgb(13,8,135)'); // 0 -> the lowest colour
    expect(svg).toContain('rgb(240,249,33)'); // 1 -> the highest
  });

  it('PNG: decodes to the right size and cell colours', () => {
    const png = viz.heatmapPNG({ rows: 2, cols: 2, data: [0, 1, 1, 0] }, { cell: 3 });
    const img = decode(png);
    expect([img.width, img.height, img.channels]).toEqual([6, 6, 3]);
    expect(Array.from(img.data.slice(0, 3))).toEqual(colorAt(0));
    expect(Array.from(img.data.slice(3 * 3, 3 * 3 + 3))).toEqual(colorAt(1));
  });

  it('from an attention-weights tensor, picking a head', async () => {
    const q = randn([1, 2, 4, 8], { seed: 1 }), k = randn([1, 2, 5, 8], { seed: 2 });
    const w = F.attentionWeights(q, k, { isCausal: true });
    const m = await viz.matrixOf(w, [0, 1]);
    expect([m.rows, m.cols]).toEqual([4, 5]);
    expect(m.data[1]).toBe(0); // causal: row 0 sees only key 0
    const svg = await viz.attentionHeatmapSVG(w, { index: [0, 1] });
    expect((svg.match(/<rect x=/g) ?? []).length).toBe(20);
    await expect(viz.matrixOf(w, [0, 2])).rejects.toThrow(ShapeError);
    expect(() => viz.heatmapSVG({ rows: 2, cols: 2, data: [1, 2, 3] })).toThrow(/needs 4 values, got 3/);
  });
});
