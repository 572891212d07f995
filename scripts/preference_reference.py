"""Reference returns for the ``preference`` game, per scripted teacher: random writing, the best fixed
response (no use of the feedback), the Bayes-optimal AI that knows the teacher's strategy (posterior over the
permutations θ given the orderings it saw, then the response of highest expected quality) and an oracle that
knows θ; and the same Bayes AI when it assumes another strategy than the teacher's, or is uncertain among
them (a uniform mixture: what an AI trained against the whole teacher population should aim for).

    python scripts/preference_reference.py [--param rounds=4] [--episodes 4096]
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np
import torch
import yaml

from adhoc.games import make_game


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--episodes", type=int, default=4096)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    game = make_game("preference", **{k: yaml.safe_load(v) for k, v in (p.split("=", 1) for p in args.param)})
    E, R = args.episodes, 2 ** game.d
    thetas = torch.tensor(sorted(set(itertools.permutations(game.weights))), dtype=torch.float32)  # [P, d]
    P = thetas.shape[0]
    responses = torch.arange(R)
    q_all = game.quality(thetas, responses.expand(P, R))  # [P, R]
    best_fixed = float(q_all.mean(0).max())
    print(f"random {float(q_all.mean()):.3f}   best fixed response {best_fixed:.3f}   oracle 1.000")
    teachers = game.scripted_strategies()
    names = list(teachers)
    print(f"return of the Bayes-optimal AI that ASSUMES the row's teacher strategy (mixture: uniform over the "
          f"{len(names)}), with the column's teacher:")
    print(f"{'assumes':<12}" + "".join(f"{n:>12}" for n in names))
    table = {a: {} for a in [*names, "mixture"]}
    for name, teacher in teachers.items():
        rng = np.random.default_rng(args.seed)
        state = game.reset(E, rng)
        gen = torch.Generator().manual_seed(args.seed)
        log_lik = torch.zeros(len(names), E, P)  # per assumed strategy: log P(orderings | θ)
        for t in range(game.feedback):
            a = torch.multinomial(teacher.log_probs(game, state, 1).exp(), 1, generator=gen)[:, 0]
            for p in range(P):  # the likelihood of the ordering under each θ, per assumed strategy
                probe = type(state)(E, t=state.t, extra={**state.extra, "theta": thetas[p].expand(E, -1)})
                for m, assumed in enumerate(teachers.values()):
                    log_lik[m, :, p] += assumed.log_probs(game, probe, 1).gather(1, a[:, None])[:, 0]
            state, _, _ = game.step(state, torch.stack([torch.zeros_like(a), a], 1))
        assumptions = {n: log_lik[m] for m, n in enumerate(names)}
        assumptions["mixture"] = torch.logsumexp(log_lik, 0)  # uniform prior over the strategies
        for assumed, ll in assumptions.items():
            # orderings impossible under every θ for this assumption: the prior (no information)
            ll = torch.where(torch.isinf(ll).all(1, keepdim=True), torch.zeros_like(ll), ll)
            choice = (torch.softmax(ll, 1) @ q_all).argmax(1)  # [E]: the response of highest expected quality
            table[assumed][name] = float(game.quality(state.extra["theta"], choice).mean())
    for assumed, row in table.items():
        print(f"{assumed:<12}" + "".join(f"{row[n]:>12.3f}" for n in names))
    print("(the diagonal is the Bayes-optimal AI that knows the teacher's strategy)")

if __name__ == "__main__":
    main()
