"""Policies over legal action strings, from the LM's log-likelihood of each action's tokens.

For a row (member m, observation o) and legal actions a_1..a_A, the policy is

    π_m(a | o) = softmax_a( log p_m(tokens(a) | o) )   restricted to the legal actions,

with log p_m the sum of the token log-probabilities under the base LM with member m's adapter. This is an
exact distribution: its log-probabilities and entropy are differentiable and used directly by training.

Each observation is encoded ONCE per row (one batched pass over all rows of all members); its key/value
cache is then shared by all its actions, whose tokens run in a second batched pass. When the actions are
single tokens (and hence prefix-free), the second pass is skipped: the scores are read off the prompt's
next-token distribution. When action token sequences are not prefix-free (e.g. "1" and "12"), an
end-of-sequence token is appended to every action so the scores are a proper distribution over strings.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from adhoc.lm.adapters import AdapterBank
from adhoc.lm.base import BaseModel


@dataclass
class ActionTable:
    """Tokenized legal actions of one seat: ids [A, La] right-padded, mask [A, La]."""

    names: list[str]
    ids: torch.Tensor
    mask: torch.Tensor

    @property
    def single_token(self) -> bool:
        return self.ids.shape[1] == 1


def _prefix_free(seqs: list[list[int]]) -> bool:
    as_tuples = {tuple(s) for s in seqs}
    return len(as_tuples) == len(seqs) and not any(
        tuple(s[:k]) in as_tuples for s in seqs for k in range(1, len(s)))


class Policy:
    """Scores legal action strings for many (member, observation) rows in one batched pass."""

    def __init__(self, base: BaseModel, bank: AdapterBank) -> None:
        self.base, self.bank = base, bank
        self.model, self.tokenizer = base.model, base.tokenizer
        self._tables: dict[tuple[str, ...], ActionTable] = {}
        self._prompts: dict[str, list[int]] = {}

    def actions(self, names: list[str]) -> ActionTable:
        key = tuple(names)
        if key not in self._tables:
            seqs = [self.tokenizer(" " + a, add_special_tokens=False).input_ids for a in names]
            if any(len(s) == 0 for s in seqs):
                raise ValueError(f"an action string tokenizes to nothing: {names}")
            if not _prefix_free(seqs):
                eos = self.tokenizer.eos_token_id
                seqs = [s + [eos] for s in seqs]
            width = max(len(s) for s in seqs)
            ids = torch.full((len(seqs), width), self.tokenizer.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(seqs), width), dtype=torch.bool)
            for i, s in enumerate(seqs):
                ids[i, : len(s)] = torch.tensor(s)
                mask[i, : len(s)] = True
            self._tables[key] = ActionTable(list(names), ids.to(self.base.device), mask.to(self.base.device))
        return self._tables[key]

    def _encode(self, observations: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded prompt ids and mask [R, Lp]; tokenization cached per distinct observation."""
        seqs = []
        for o in observations:
            if o not in self._prompts:
                ids = self.tokenizer(o).input_ids
                if self.tokenizer.bos_token_id is not None and (not ids or ids[0] != self.tokenizer.bos_token_id):
                    ids = [self.tokenizer.bos_token_id] + ids
                self._prompts[o] = ids
            seqs.append(self._prompts[o])
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, width - len(s):] = torch.tensor(s)
            mask[i, width - len(s):] = 1
        return ids.to(self.base.device), mask.to(self.base.device)

    def scores(self, members: torch.Tensor, observations: list[str], table: ActionTable) -> torch.Tensor:
        """Unnormalised action scores log p_m(tokens(a) | o): [R, A] for rows (members[r], observations[r])."""
        members = members.to(self.base.device)
        order = torch.argsort(members, stable=True)  # contiguous member groups → the bank's fast path
        members_sorted = members[order]
        obs_sorted = [observations[i] for i in order.tolist()]
        ids, mask = self._encode(obs_sorted)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        R, A = ids.shape[0], table.ids.shape[0]
        need_cache = not table.single_token
        with self.bank.route(members_sorted):
            out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions,
                             use_cache=need_cache, logits_to_keep=1)
        first = torch.log_softmax(out.logits[:, -1].float(), dim=-1)  # [R, V]
        scores = first[:, table.ids[:, 0]]  # [R, A]: log p(first action token | o)
        if need_cache:
            cache = out.past_key_values
            cache.batch_repeat_interleave(A)
            rest_ids = table.ids[:, :-1].repeat(R, 1)  # [R·A, La-1]: feed tokens 1..La-1, predict 2..La
            rest_mask = table.mask[:, :-1].repeat(R, 1).long()
            start = mask.sum(-1).repeat_interleave(A)  # [R·A] prompt lengths
            rest_pos = start[:, None] + torch.arange(rest_ids.shape[1], device=ids.device)[None]
            full_mask = torch.cat([mask.repeat_interleave(A, dim=0), rest_mask], dim=1)
            with self.bank.route(members_sorted.repeat_interleave(A)):
                out2 = self.model(input_ids=rest_ids, attention_mask=full_mask, position_ids=rest_pos,
                                  past_key_values=cache, use_cache=False)
            logp = torch.log_softmax(out2.logits.float(), dim=-1)  # [R·A, La-1, V]
            target = table.ids[:, 1:].repeat(R, 1)
            tok_logp = logp.gather(-1, target[..., None])[..., 0] * table.mask[:, 1:].repeat(R, 1)
            scores = scores + tok_logp.sum(-1).view(R, A)
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(R, device=order.device)
        return scores[inverse]


def masked_log_softmax(scores: torch.Tensor, legal: torch.Tensor | None) -> torch.Tensor:
    """log π over the legal actions; illegal entries are -inf. scores, legal: [..., A]."""
    if legal is not None:
        scores = scores.masked_fill(~legal, float("-inf"))
    return torch.log_softmax(scores, dim=-1)


def entropy(logp: torch.Tensor) -> torch.Tensor:
    """Exact entropy of categorical distributions given log-probs [..., A] (illegal = -inf)."""
    p = logp.exp()
    return -(p * logp.masked_fill(p == 0, 0.0)).sum(-1)
