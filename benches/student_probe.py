"""Which training signal lets a tiny from-scratch model learn a scene's choice? (issue 14)

A probe in PyTorch, beside the project: a Qwen3-shaped model of the quickstart's size (4 layers,
d 128) trained on compact impression scenes written by `simforge run` (see BENCHMARKS.md), with
word-level tokens so that the tokenizer is not a variable. Levers:

  --readout letter   the answer letter after the prompt (how simforge scores students today)
  --readout option   one score per option: the logit of a fixed token at the last token of the
                     option's line, a softmax over the options (listwise cross-entropy)
  --labels choice    the real choice of the scene (noisy: the world's oracle gets 0.665)
  --labels rule      the option sharing most genres with the stated likes, fewest with dislikes
  --pretext-minutes  first train a dense, deterministic reading exercise: for every option,
                     whether it holds a liked genre (binary, per option line; for the letter
                     readout, "A likes B neither ..." written after the prompt)

Prints one JSON line per evaluation and a final one; accuracy is argmax over the shown options
on the first --eval-scenes evaluation scenes.

  python3 benches/student_probe.py --scenes SCENES.parquet --readout option --pretext-minutes 2.5 --minutes 5
"""
import argparse
import json
import random
import re
import time

import pyarrow.parquet as pq
import torch
from transformers import Qwen3Config, Qwen3ForCausalLM

parser = argparse.ArgumentParser()
parser.add_argument("--scenes", required=True, help="scenes.parquet with rendering = compact")
parser.add_argument("--readout", choices=["letter", "option"], default="option")
parser.add_argument("--labels", choices=["choice", "rule"], default="choice")
parser.add_argument("--pretext-minutes", type=float, default=0.0)
parser.add_argument("--minutes", type=float, default=5.0)
parser.add_argument("--lr", type=float, default=1e-3)
parser.add_argument("--batch", type=int, default=32)
parser.add_argument("--layers", type=int, default=4)
parser.add_argument("--width", type=int, default=128)
parser.add_argument("--eval-scenes", type=int, default=1000)
parser.add_argument("--eval-every", type=int, default=250)
parser.add_argument("--threads", type=int, default=2)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
torch.manual_seed(args.seed)
random.seed(args.seed)
torch.set_num_threads(args.threads)
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

vocab = {}


def tokens(text):
    return [vocab.setdefault(w, len(vocab)) for w in re.findall(r"\w+|[^\w\s]|\n", text)]


def parse(prompt):
    """The stated likes and dislikes and each option's genres, from the compact rendering."""
    lines = prompt.split("\n")
    likes = set(lines[0].removeprefix("Likes: ").split(", "))
    dislikes = set(lines[1].removeprefix("Dislikes: ").split(", "))
    options = [line[4:].split(", ") for line in lines[lines.index("Options:") + 1 :]]
    return likes, dislikes, options


def rule_choice(prompt):
    likes, dislikes, options = parse(prompt)
    score = [sum(g in likes for g in o) - sum(g in dislikes for g in o) for o in options]
    return score.index(max(score))


def liked(prompt):
    likes, _, options = parse(prompt)
    return [float(any(g in likes for g in o)) for o in options]


tokens(" ".join(["yes", "likes", "neither", "Reading", "Answer"] + list(LETTERS)))


def encode(row):
    ids = tokens(row["prompt"])
    newline = vocab["\n"]
    first = max(i for i, t in enumerate(ids) if t == vocab["Options"]) + 3
    ends = [i - 1 for i in range(first, len(ids)) if ids[i] == newline] + [len(ids) - 1]
    assert len(ends) == row["choice_cnt"], "the prompt is not a compact rendering"
    label = rule_choice(row["prompt"]) if args.labels == "rule" else row["target_pos"]
    reading = " ".join(f"{LETTERS[j]} {'likes' if y else 'neither'}" for j, y in enumerate(liked(row["prompt"])))
    return {
        "ids": ids,
        "ends": ends,
        "answer": ids + tokens("\nAnswer :"),
        "reading": ids + tokens("\nReading : " + reading),
        "label": label,
        "liked": liked(row["prompt"]),
        "k": row["choice_cnt"],
    }


rows = pq.read_table(args.scenes, columns=["split", "prompt", "target_pos", "choice_cnt"]).to_pylist()
train = [encode(r) for r in rows if r["split"] == "train"]
held_out = [encode(r) for r in rows if r["split"] == "eval"][: args.eval_scenes]
letters = [vocab[c] for c in LETTERS]
YES = vocab["yes"]
config = Qwen3Config(
    vocab_size=len(vocab) + 8,
    hidden_size=args.width,
    intermediate_size=3 * args.width,
    num_hidden_layers=args.layers,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=args.width // 4,
    max_position_embeddings=1024,
    tie_word_embeddings=True,
)
model = Qwen3ForCausalLM(config)
optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)


def forward(sequences):
    length = max(map(len, sequences))
    ids = torch.zeros(len(sequences), length, dtype=torch.long)
    mask = torch.zeros(len(sequences), length, dtype=torch.long)
    for i, s in enumerate(sequences):
        ids[i, : len(s)] = torch.tensor(s)
        mask[i, : len(s)] = 1
    return ids, model(input_ids=ids, attention_mask=mask).logits


def option_scores(batch):
    """One score per shown option, under the chosen readout."""
    if args.readout == "letter":
        _, logits = forward([x["answer"] for x in batch])
        return [logits[i, len(x["answer"]) - 1, letters[: x["k"]]] for i, x in enumerate(batch)]
    _, logits = forward([x["ids"] for x in batch])
    return [logits[i, x["ends"], YES] for i, x in enumerate(batch)]


def pretext_loss(batch):
    if args.readout == "option":
        _, logits = forward([x["ids"] for x in batch])
        return sum(torch.nn.functional.binary_cross_entropy_with_logits(logits[i, x["ends"], YES], torch.tensor(x["liked"])) for i, x in enumerate(batch)) / len(batch)
    ids, logits = forward([x["reading"] for x in batch])
    # Targets: the judgement words of the reading (every second token after "Reading :").
    positions, targets = [], []
    for i, x in enumerate(batch):
        start = len(x["answer"])
        for j in range(start + 1, len(x["reading"]), 2):
            positions.append((i, j - 1))
            targets.append(x["reading"][j])
    picked = torch.stack([logits[i, j] for i, j in positions])
    return torch.nn.functional.cross_entropy(picked, torch.tensor(targets))


def accuracy():
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(held_out), 100):
            batch = held_out[i : i + 100]
            correct += sum(int(s.argmax().item() == x["label"]) for s, x in zip(option_scores(batch), batch))
    model.train()
    return correct / len(held_out)


reference = [r for r in rows if r["split"] == "eval"][: args.eval_scenes]
print(json.dumps({"rule_on_real_choices": sum(rule_choice(r["prompt"]) == r["target_pos"] for r in reference) / len(reference), "train_scenes": len(train)}), flush=True)
order = list(range(len(train)))
random.shuffle(order)
clock = time.time()
step = 0
phase = "pretext" if args.pretext_minutes > 0 else "choice"
while time.time() - clock < (args.pretext_minutes + args.minutes) * 60:
    if phase == "pretext" and time.time() - clock >= args.pretext_minutes * 60:
        print(json.dumps({"after_pretext": True, "step": step, "accuracy": accuracy()}), flush=True)
        phase = "choice"
    batch = [train[order[(step * args.batch + j) % len(order)]] for j in range(args.batch)]
    if phase == "pretext":
        loss = pretext_loss(batch)
    else:
        loss = sum(torch.nn.functional.cross_entropy(s.unsqueeze(0), torch.tensor([x["label"]])) for s, x in zip(option_scores(batch), batch)) / len(batch)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    for group in optimizer.param_groups:
        group["lr"] = args.lr * min(1.0, (step + 1) / 100)
    optimizer.step()
    optimizer.zero_grad()
    step += 1
    if step % args.eval_every == 0:
        minutes = (time.time() - clock) / 60
        print(json.dumps({"phase": phase, "step": step, "examples": step * args.batch, "minutes": round(minutes, 2), "loss": round(loss.item(), 4), "accuracy": accuracy()}), flush=True)
final = {"final": True, **vars(args), "steps": step, "examples": step * args.batch, "accuracy": accuracy()}
print(json.dumps(final), flush=True)
