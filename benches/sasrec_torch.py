"""Time per training epoch of the reference PyTorch SASRec (github.com/pmixer/SASRec.pytorch,
the widely used port) on a SASRec `user item` file, for `benches/sasrec_speed.sh`.

It imports the reference's own model, data partition and sampler from a checkout you point
it at (not part of this repository) and runs its training step exactly as its main.py does:
sampled batch → forward → BCE on positions with a target → Adam(lr, betas 0.9/0.98) step.
Prints {"seconds_per_epoch": …} over `epochs` epochs after one warm-up epoch.

Run: python3 benches/sasrec_torch.py PMIXER_PYTHON_DIR DATA_TXT EPOCHS MAX_LEN DROPOUT [cpu|cuda]
"""
import json
import os
import shutil
import sys
import tempfile
import time
from types import SimpleNamespace

import numpy as np
import torch

ref, data_txt, epochs, maxlen, dropout = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
device = sys.argv[6] if len(sys.argv) > 6 else "cpu"
sys.path.insert(0, os.path.abspath(ref))
from model import SASRec  # noqa: E402
from utils import WarpSampler, data_partition  # noqa: E402

# data_partition reads data/NAME.txt relative to the working directory.
work = tempfile.mkdtemp()
os.makedirs(os.path.join(work, "data"))
name = os.path.splitext(os.path.basename(data_txt))[0]
shutil.copy(data_txt, os.path.join(work, "data", name + ".txt"))
os.chdir(work)
user_train, user_valid, user_test, usernum, itemnum = data_partition(name)

args = SimpleNamespace(device=device, norm_first=True, hidden_units=50, num_blocks=2, num_heads=1, dropout_rate=dropout, maxlen=maxlen, lr=1e-3, batch_size=128)
num_batch = (len(user_train) - 1) // args.batch_size + 1
sampler = WarpSampler(user_train, usernum, itemnum, batch_size=args.batch_size, maxlen=args.maxlen, n_workers=3)
model = SASRec(usernum, itemnum, args).to(device)
for _, param in model.named_parameters():
    try:
        torch.nn.init.xavier_normal_(param.data)
    except ValueError:
        pass
model.train()
bce = torch.nn.BCEWithLogitsLoss()
adam = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.98))


def epoch():
    for _ in range(num_batch):
        u, seq, pos, neg = (np.array(x) for x in sampler.next_batch())
        pos_logits, neg_logits = model(u, seq, pos, neg)
        adam.zero_grad()
        indices = np.where(pos != 0)
        loss = bce(pos_logits[indices], torch.ones_like(pos_logits[indices]))
        loss += bce(neg_logits[indices], torch.zeros_like(neg_logits[indices]))
        loss.backward()
        adam.step()
    if device == "cuda":
        torch.cuda.synchronize()


epoch()
start = time.perf_counter()
for _ in range(epochs):
    epoch()
seconds = (time.perf_counter() - start) / epochs
sampler.close()
print(json.dumps({"seconds_per_epoch": seconds, "epochs": epochs, "batches_per_epoch": num_batch, "torch": torch.__version__, "threads": torch.get_num_threads(), "device": device}))
