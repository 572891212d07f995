"""Policies over legal action strings, from the LM's log-likelihood of each action's tokens.

For a row (member m, observation o) and legal actions a_1..a_A, the policy is

    π_m(a | o) = softmax_a( log p_m(tokens(a) | o) )   restricted to the legal actions,

with log p_m the sum of the token log-probabilities under the base LM with member m's adapter. This is an
exact distribution: its log-probabilities and entropy are differentiable and used directly by training.

Each observation is encoded ONCE per row (one batched pass over all rows of all members); its key/value
cache is then shared by all its actions, whose tokens run in a second batched pass. When the actions are
single tokens (and hence prefix-free), the second pass is skipped: the scores are read off the prompt's
next-token distribution. Otherwise the second pass runs the actions' prefix tree (``ActionTree``: CMG-H's 528
three-digit actions "000".."527" are 6 + 53 = 59 nodes, against 528 · 2 tokens one action at a time) once per
row after the row's cache, with a 4D attention mask that lets each node see the prompt and its own ancestors;
rows go in chunks bounded by ``Policy.score_budget``, checkpointed when there are gradients and several chunks.
``Policy.action_scoring = "repeat"`` is the earlier second pass (the cache repeated once per action, every
action's tokens on their own), kept for comparison (``benchmarks/bench_repeated_cmgh.py``); the two give the same
scores up to float rounding. When action token sequences are not prefix-free (e.g. "1" and "12"), an
end-of-sequence token is appended to every action so the scores are a proper distribution over strings.
"""

from __future__ import annotations

import inspect
import itertools
from dataclasses import dataclass

import numpy as np
import torch
import torch.utils.checkpoint

from adhoc.errors import UserError
from adhoc.lm.adapters import AdapterBank
from adhoc.lm.base import BaseModel


ACTION_SCORING = ("tree", "repeat")
DEFAULT_SCORE_BUDGET = 1 << 24  # elements per chunk of the tree pass (64 MiB of float32 per tensor of that size)


@dataclass
class ActionTable:
    """Tokenized legal actions of one seat: ids [A, La] right-padded, mask [A, La]."""

    names: list[str]
    ids: torch.Tensor
    mask: torch.Tensor

    @property
    def single_token(self) -> bool:
        return self.ids.shape[1] == 1


@dataclass
class ActionTree:
    """The prefix tree of an ``ActionTable``'s token sequences, for scoring tokens 2..La of every action at once.

    Nodes are the distinct proper prefixes p = ids[a, :j+1] (j = 0..La-2) of actions that go on after them; a
    node feeds its last token ``tokens`` [N] at depth ``depth`` [N] (j: its position after the prompt) and sees
    its ancestors and itself (``ancestors`` [N, N]). Edges are the distinct (node, next token) pairs
    (``edge_node`` [E], ``edge_token`` [E]); action a's token j+1 is
    edge ``action_edges[a, j]`` where ``action_mask[a, j]`` ([A, La-1])."""

    tokens: torch.Tensor
    depth: torch.Tensor
    ancestors: torch.Tensor
    edge_token: torch.Tensor
    edge_node: torch.Tensor
    action_edges: torch.Tensor
    action_mask: torch.Tensor

    @property
    def n(self) -> int:
        return int(self.tokens.shape[0])

    @staticmethod
    def build(table: ActionTable) -> "ActionTree":
        ids, mask = table.ids.cpu().tolist(), table.mask.cpu()
        A, La = table.ids.shape
        lengths = mask.sum(1).tolist()
        nodes: dict[tuple[int, ...], int] = {}
        parents: list[int] = []
        tokens, depth = [], []
        edges: dict[tuple[int, int], int] = {}
        action_edges = torch.zeros((A, La - 1), dtype=torch.long)
        for a in range(A):
            parent = -1
            for j in range(lengths[a] - 1):
                prefix = tuple(ids[a][: j + 1])
                if prefix not in nodes:
                    nodes[prefix] = len(tokens)
                    tokens.append(ids[a][j])
                    depth.append(j)
                    parents.append(parent)
                node = parent = nodes[prefix]
                action_edges[a, j] = edges.setdefault((node, ids[a][j + 1]), len(edges))
        N = len(tokens)
        ancestors = torch.eye(N, dtype=torch.bool)
        for i in range(N):
            p = parents[i]
            while p >= 0:
                ancestors[i, p] = True
                p = parents[p]
        edge_list = list(edges)
        device = table.ids.device
        return ActionTree(
            tokens=torch.tensor(tokens, dtype=torch.long, device=device),
            depth=torch.tensor(depth, dtype=torch.long, device=device),
            ancestors=ancestors.to(device),
            edge_token=torch.tensor([tok for _, tok in edge_list], dtype=torch.long, device=device),
            edge_node=torch.tensor([node for node, _ in edge_list], dtype=torch.long, device=device),
            action_edges=action_edges.to(device), action_mask=mask[:, 1:].to(device))


def shared_prefix(a: list[int], b: list[int]) -> int:
    """How many leading tokens ``a`` and ``b`` have in common."""
    n = min(len(a), len(b))
    if a[:n] == b[:n]:  # the usual case (append-only transcripts): one comparison
        return n
    return next(i for i, (x, y) in enumerate(zip(a, b)) if x != y)


def _prefix_free(seqs: list[list[int]]) -> bool:
    as_tuples = {tuple(s) for s in seqs}
    return len(as_tuples) == len(seqs) and not any(
        tuple(s[:k]) in as_tuples for s in seqs for k in range(1, len(s)))


class Policy:
    """Scores legal action strings for many (member, observation) rows in one batched pass."""

    def __init__(self, base: BaseModel, bank: AdapterBank, scripted: list | None = None) -> None:
        self.base, self.bank = base, bank
        # member ids bank.n_members + j play scripted strategy j (``adhoc.scripted``; rollout dispatches)
        self.scripted = list(scripted or [])
        self.model, self.tokenizer = base.model, base.tokenizer
        self._tables: dict[tuple[str, ...], ActionTable] = {}
        self._prompts: dict[str, list[int]] = {}
        self._cache_arg = cache_argument(self.model)
        self._trees: dict[tuple[str, ...], ActionTree] = {}
        # multi-token actions: "tree" scores every action from one pass over their prefix tree per row (the
        # prompt's cache shared); "repeat", the earlier way, repeats the cache once per action. The same scores.
        self.action_scoring = "tree"
        # the most elements (logits and attention weights) one chunk of rows of the tree pass may hold; None: one
        # chunk. With gradients, chunks are checkpointed, so this also bounds what the backward pass keeps of it.
        self.score_budget: int | None = DEFAULT_SCORE_BUDGET
        # the tree pass needs a 4D additive attention mask, which sdpa and eager attention read as given
        self._tree_attention = getattr(self.model.config, "_attn_implementation", "eager") in ("sdpa", "eager")

    def actions(self, names: list[str]) -> ActionTable:
        key = tuple(names)
        if key not in self._tables:
            seqs = [self.tokenizer(" " + a, add_special_tokens=False).input_ids for a in names]
            if any(len(s) == 0 for s in seqs):
                raise ValueError(f"an action string tokenizes to nothing: {names}")
            if not _prefix_free(seqs):
                eos = self.tokenizer.eos_token_id
                if eos is None:
                    raise UserError(f"actions {names} tokenize so that one begins another, and the base model's "
                                    f"tokenizer has no end-of-sequence token to tell them apart")
                seqs = [s + [eos] for s in seqs]
            width = max(len(s) for s in seqs)
            ids = torch.full((len(seqs), width), self.tokenizer.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(seqs), width), dtype=torch.bool)
            for i, s in enumerate(seqs):
                ids[i, : len(s)] = torch.tensor(s)
                mask[i, : len(s)] = True
            self._tables[key] = ActionTable(list(names), ids.to(self.base.device), mask.to(self.base.device))
        return self._tables[key]

    def tokens(self, observation: str) -> list[int]:
        """Prompt token ids of an observation (BOS first), cached per distinct observation."""
        if observation not in self._prompts:
            if len(self._prompts) > 200_000:  # multi-step games make many distinct texts: bound the cache
                self._prompts.clear()
            ids = self.tokenizer(observation).input_ids
            if self.tokenizer.bos_token_id is not None and (not ids or ids[0] != self.tokenizer.bos_token_id):
                ids = [self.tokenizer.bos_token_id] + ids
            self._prompts[observation] = ids
        return self._prompts[observation]

    def _left_pad(self, seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded ids and mask [R, width], filled at once (not row by row: a step of a multi-step game
        re-scored under every member has thousands of rows)."""
        lengths = np.fromiter(map(len, seqs), dtype=np.int64, count=len(seqs))
        width = int(lengths.max())
        mask = np.arange(width)[None, :] >= (width - lengths)[:, None]  # [R, width]: each row's last len(s) columns
        ids = np.full((len(seqs), width), self.tokenizer.pad_token_id, dtype=np.int64)
        ids[mask] = np.fromiter(itertools.chain.from_iterable(seqs), dtype=np.int64, count=int(lengths.sum()))
        return torch.from_numpy(ids).to(self.base.device), torch.from_numpy(mask.astype(np.int64)).to(self.base.device)

    def _encode(self, observations: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded prompt ids and mask [R, Lp]; tokenization cached per distinct observation."""
        return self._left_pad([self.tokens(o) for o in observations])

    def scores(self, members: torch.Tensor, observations: list[str], table: ActionTable,
               hidden: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Unnormalised action scores log p_m(tokens(a) | o): [R, A] for rows (members[r], observations[r]);
        ``hidden``: also the base's last hidden state at each prompt's last token [R, H] (the value heads' input)."""
        members = members.to(self.base.device)
        order = torch.argsort(members, stable=True)  # contiguous member groups → the bank's fast path
        members_sorted = members[order]
        obs_sorted = [observations[i] for i in order.tolist()]
        ids, mask = self._encode(obs_sorted)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        R = ids.shape[0]
        need_cache = not table.single_token
        with self.bank.route(members_sorted):
            out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions,
                             use_cache=need_cache, logits_to_keep=1, output_hidden_states=hidden)
        scores = self._action_scores(out, mask, mask.sum(-1), members_sorted, table)
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(R, device=order.device)
        return (scores[inverse], out.hidden_states[-1][:, -1][inverse]) if hidden else scores[inverse]

    def _action_scores(self, out, mask: torch.Tensor, lengths: torch.Tensor, members_sorted: torch.Tensor,
                       table: ActionTable) -> torch.Tensor:
        """[R, A] scores from the prompt pass ``out`` (its last logits and, for multi-token actions, its cache).
        mask: [R, L] the prompt's attention mask; lengths: [R] real prompt tokens (the actions' first position)."""
        first = torch.log_softmax(out.logits[:, -1].float(), dim=-1)  # [R, V]
        scores = first[:, table.ids[:, 0]]  # [R, A]: log p(first action token | o)
        if table.single_token:
            return scores
        if self.action_scoring not in ACTION_SCORING:
            raise ValueError(f"action_scoring must be one of {', '.join(ACTION_SCORING)} (got {self.action_scoring!r})")
        if self.action_scoring == "repeat" or not self._tree_attention:
            return scores + self._rest_scores_repeat(output_cache(out), mask, lengths, members_sorted, table)
        return scores + self._rest_scores_tree(output_cache(out), mask, lengths, members_sorted, table)

    def _rest_scores_repeat(self, cache, mask: torch.Tensor, lengths: torch.Tensor, members_sorted: torch.Tensor,
                            table: ActionTable) -> torch.Tensor:
        """log p(tokens 2..La | o, token 1) [R, A], the earlier way (``action_scoring="repeat"``): the prompt's
        cache is repeated once per action and every action's tokens run on their own ([R·A] sequences)."""
        R, A = mask.shape[0], table.ids.shape[0]
        cache.batch_repeat_interleave(A)  # replaces the cache's tensors (the caller's references stay valid)
        rest_ids = table.ids[:, :-1].repeat(R, 1)  # [R·A, La-1]: feed tokens 1..La-1, predict 2..La
        rest_mask = table.mask[:, :-1].repeat(R, 1).long()
        start = lengths.repeat_interleave(A)  # [R·A] prompt lengths
        rest_pos = start[:, None] + torch.arange(rest_ids.shape[1], device=mask.device)[None]
        full_mask = torch.cat([mask.repeat_interleave(A, dim=0), rest_mask], dim=1)
        with self.bank.route(members_sorted.repeat_interleave(A)):
            out2 = self.model(input_ids=rest_ids, attention_mask=full_mask, position_ids=rest_pos,
                              use_cache=False, **{self._cache_arg: cache})
        logp = torch.log_softmax(out2.logits.float(), dim=-1)  # [R·A, La-1, V]
        target = table.ids[:, 1:].repeat(R, 1)
        tok_logp = logp.gather(-1, target[..., None])[..., 0] * table.mask[:, 1:].repeat(R, 1)
        return tok_logp.sum(-1).view(R, A)

    def _rest_scores_tree(self, cache, mask: torch.Tensor, lengths: torch.Tensor, members_sorted: torch.Tensor,
                          table: ActionTable) -> torch.Tensor:
        """log p(tokens 2..La | o, token 1) [R, A] from one pass over the actions' prefix tree (``ActionTree``).

        Each row feeds the tree's N nodes (the distinct proper prefixes of the actions' token sequences, each
        its last token) after its prompt's cache, which is shared, not repeated: a 4D attention mask lets node
        i see the row's real prompt tokens and its own ancestors in the tree (itself included), at position
        prompt length + depth, so node i's next-token distribution is exactly the one the repeated path computes
        for every action beginning with that prefix. Rows run in chunks of at most ``score_budget`` elements
        (of the chunk's logits and attention weights); with gradients and more than one chunk each chunk is
        checkpointed (recomputed in the backward pass), so only one chunk's activations are alive at a time."""
        tree = self._tree(table)
        R, Lc = mask.shape
        N, V = tree.n, self.model.config.vocab_size
        heads = getattr(self.model.config, "num_attention_heads", 1)
        per_row = N * (V + heads * (Lc + N))
        rows = R if self.score_budget is None else max(1, min(R, self.score_budget // max(per_row, 1)))
        layers = [(layer.keys, layer.values) for layer in cache.layers]
        dtype = layers[0][0].dtype
        seen = torch.cat([mask.bool()[:, None, :].expand(R, N, Lc), tree.ancestors[None].expand(R, N, N)], -1)
        positions = lengths[:, None] + tree.depth[None]  # [R, N]

        def chunk(lo: int, hi: int) -> torch.Tensor:
            attention = torch.zeros(seen[lo:hi].shape, dtype=dtype, device=mask.device).masked_fill(
                ~seen[lo:hi], torch.finfo(dtype).min)[:, None]  # [r, 1, N, Lc + N], additive
            part = _cache([(k[lo:hi], v[lo:hi]) for k, v in layers])
            with self.bank.route(members_sorted[lo:hi]):
                out = self.model(input_ids=tree.tokens[None].expand(hi - lo, N), attention_mask=attention,
                                 position_ids=positions[lo:hi], use_cache=False, **{self._cache_arg: part})
            logits = out.logits.float()  # [r, N, V]
            picked = logits.reshape(hi - lo, -1)[:, tree.edge_node * logits.shape[-1] + tree.edge_token]  # [r, E]
            logp = picked - torch.logsumexp(logits, -1)[:, tree.edge_node]  # log p(edge token | node)
            return logp[:, tree.action_edges].masked_fill(~tree.action_mask, 0.0).sum(-1)  # [r, A]

        if rows >= R:
            return chunk(0, R)
        checkpoint = torch.is_grad_enabled()
        parts = []
        for lo in range(0, R, rows):
            hi = min(R, lo + rows)
            parts.append(torch.utils.checkpoint.checkpoint(chunk, lo, hi, use_reentrant=False) if checkpoint
                         else chunk(lo, hi))
        return torch.cat(parts)

    def _tree(self, table: ActionTable) -> "ActionTree":
        key = tuple(table.names)
        if key not in self._trees:
            self._trees[key] = ActionTree.build(table)
        return self._trees[key]

    def scores_reusing(self, members: torch.Tensor, observations: list[str], table: ActionTable,
                       previous: "EncodedPrompts | None", previous_rows: list[int], hidden: bool = False,
                       partial: bool = False) -> tuple[torch.Tensor, "EncodedPrompts", torch.Tensor]:
        """``scores`` for multi-step games, reusing encoded prefixes (the key/value cache) across steps.

        Row r may name ``previous_rows[r]``, a row of ``previous`` (the prompts encoded at an earlier step),
        e.g. the same seat's observation one step earlier. When row r's tokens begin with all of that row's
        (append-only transcripts), its cached keys/values are reused and only the new suffix is encoded
        (positions continue from the prefix); with ``partial``, also when they share only a start (Overcooked's
        static layout, then a state that changes). Other rows, and those with -1, are encoded whole. The result equals ``scores`` up to float rounding, and carries gradients through the
        reused prefix too (the weights do not change within a rollout).

        Returns (scores [R, A], the prompts encoded now, ``row_of`` [R]: the encoded row of each input row);
        ``hidden``: scores are (scores, the last hidden state at each prompt's last token [R, H]), as ``scores``'."""
        members = members.to(self.base.device)
        R = len(observations)
        order = torch.argsort(members, stable=True)
        members_sorted = members[order]
        rows = order.tolist()
        full = [self.tokens(observations[i]) for i in rows]
        reuse = [0] * R  # how many leading tokens of each row come from the cache
        source = [0] * R
        if previous is not None:
            for k, i in enumerate(rows):
                c = previous_rows[i]
                if c >= 0:
                    prefix = previous.ids[c]
                    n = shared_prefix(prefix, full[k][:-1])  # at least one new token to read logits from
                    if n > 0 and (partial or n == min(len(prefix), len(full[k]) - 1)):
                        reuse[k], source[k] = n, c
        device = self.base.device
        suffix_ids, suffix_mask = self._left_pad([f[n:] for f, n in zip(full, reuse)])
        if any(reuse):
            src = torch.tensor(source, device=device)
            used = previous.mask[src]  # [R, Lc]
            used = used * (used.cumsum(-1) <= torch.tensor(reuse, device=device)[:, None]).long()
            cache = _cache([(gather_rows(k, src), gather_rows(v, src)) for k, v in zip(previous.keys, previous.values)])
            mask = torch.cat([used, suffix_mask], dim=1)
        else:
            cache, mask = None, suffix_mask
        start = torch.tensor(reuse, device=device)[:, None]
        positions = (start + suffix_mask.cumsum(-1) - 1).clamp(min=0)
        with self.bank.route(members_sorted):
            out = self.model(input_ids=suffix_ids, attention_mask=mask, position_ids=positions,
                             use_cache=True, logits_to_keep=1, output_hidden_states=hidden, **{self._cache_arg: cache})
        layers = output_cache(out).layers
        keep = mask.bool().any(0)  # drop columns no row uses any more (padding accumulates otherwise)
        if bool(keep.all()):  # nothing to drop: keep the cache's tensors as they are (no copy, no scatter backward)
            encoded = EncodedPrompts(ids=full, keys=[layer.keys for layer in layers],
                                     values=[layer.values for layer in layers], mask=mask)
        else:
            keep = torch.nonzero(keep)[:, 0]
            encoded = EncodedPrompts(ids=full, keys=[layer.keys.index_select(2, keep) for layer in layers],
                                     values=[layer.values.index_select(2, keep) for layer in layers],
                                     mask=mask[:, keep])
        scores = self._action_scores(out, mask, torch.tensor([len(f) for f in full], device=device),
                                     members_sorted, table)
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(R, device=order.device)
        scores = (scores[inverse], out.hidden_states[-1][:, -1][inverse]) if hidden else scores[inverse]
        return scores, encoded, inverse.cpu()


@dataclass
class EncodedPrompts:
    """Prompts encoded by ``Policy.scores_reusing``: token ids per row, per-layer keys/values
    [R, heads, L, head_dim] and the attention mask [R, L] (1 = a real token; padding may sit anywhere)."""

    ids: list[list[int]]
    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    mask: torch.Tensor


class _GatherRows(torch.autograd.Function):
    """``x.index_select(0, index)`` whose backward is one ``index_add_``: autograd's own backward of
    ``index_select`` goes through ``scatter_add`` with an index as large as the gradient, ~10x slower on a CPU,
    which was most of the backward of a multi-step game re-scored under every member (thousands of rows
    gathering the key/value cache of the prefixes they share). The same sums, so the same gradient."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(index)
        ctx.rows = x.shape[0]
        return x.index_select(0, index)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (index,) = ctx.saved_tensors
        # a contiguous gradient: index_add_ falls back to scatter_add when the source's rows are strided
        return grad.new_zeros((ctx.rows, *grad.shape[1:])).index_add_(0, index, grad.contiguous()), None


def gather_rows(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Rows ``index`` of ``x`` (dim 0), differentiable with a fast backward (``_GatherRows``)."""
    return _GatherRows.apply(x, index) if x.requires_grad else x.index_select(0, index)


def cache_argument(model) -> str:
    """The keyword a causal LM's forward takes the key/value cache by: ``cache`` in newer transformers (5.x
    renamed it and deprecates ``past_key_values``, to be removed in 5.40), ``past_key_values`` before (4.56+)
    and in remote-code models that never renamed it."""
    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return "past_key_values"
    return "cache" if "cache" in params else "past_key_values"


def output_cache(out):
    """The key/value cache a forward pass returned: ``out.cache`` (newer transformers) or ``out.past_key_values``."""
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


def _cache(layers: list[tuple[torch.Tensor, torch.Tensor]]):
    from transformers import DynamicCache

    return DynamicCache(ddp_cache_data=layers)


def masked_log_softmax(scores: torch.Tensor, legal: torch.Tensor | None) -> torch.Tensor:
    """log π over the legal actions; illegal entries are -inf. scores, legal: [..., A]."""
    if legal is not None:
        scores = scores.masked_fill(~legal, float("-inf"))
    return torch.log_softmax(scores, dim=-1)


def entropy(logp: torch.Tensor) -> torch.Tensor:
    """Exact entropy of categorical distributions given log-probs [..., A] (illegal = -inf)."""
    p = logp.exp()
    return -(p * logp.masked_fill(p == 0, 0.0)).sum(-1)
