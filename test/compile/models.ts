// Models for the compiler's tests.
import { F, nn, optim, tidy, type Tensor } from '../../src/index.node';

/**
 * A causal transformer training step: token embedding, two encoder layers (seeded), a token head, cross-entropy over
 * [B * T, V], AdamW (with gradient clipping at 1 where `clip`); fn(tokens [B, T], targets [B * T], keyMask [B, T]).
 */
export function encoderStep(o: { B: number; T: number; E: number; H: number; V: number; ff: number; dropout: number; clip: boolean }) {
  const emb = new nn.Embedding(o.V, o.E, { seed: 1 });
  const layers = [0, 1].map((i) => new nn.TransformerEncoderLayer(o.E, o.H, { dimFeedforward: o.ff, dropout: o.dropout, isCausal: true, seed: 10 + 20 * i }));
  const head = new nn.Linear(o.E, o.V, { seed: 3 });
  const params = [...emb.parameters(), ...layers.flatMap((l) => l.parameters()), ...head.parameters()];
  const opt = new optim.AdamW(params, { lr: 3e-3, weightDecay: 0.01 });
  const fn = (tokens: Tensor, targets: Tensor, keyMask: Tensor): Tensor =>
    tidy(() => {
      opt.zeroGrad();
      let h = emb.forward(tokens);
      for (const l of layers) h = l.forward(h, { keyMask });
      const loss = F.crossEntropy(head.forward(h).reshape([o.B * o.T, o.V]), targets);
      loss.backward();
      if (o.clip) optim.clipGradNorm(params, 1.0);
      opt.step();
      return loss;
    });
  return { params, fn, layers };
}
