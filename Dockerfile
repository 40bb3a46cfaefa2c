# One image for every chatlens role (target `full`, the default): worker, eval worker, cron scheduler,
# one-off produce/eval. Target `slim-worker`: a classifier/summary worker without torch, serving the
# default classifier and the extractive summariser from ONNX exports built in the `exports` stage
# (docs/guide/runtimes.md).
FROM python:3.11-slim AS full

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 TZ=UTC

# The CPU build of torch: the default Linux wheel drags in several GB of CUDA libraries.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
RUN pip install --index-url ${TORCH_INDEX} torch==2.13.0

# The same non-editable install as anywhere else: the example file and the default head ship as
# package data, so nothing reads the source tree.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY chatlens ./chatlens
COPY producer ./producer
COPY worker ./worker
COPY eval ./eval
RUN pip install '.[worker,ops]' && rm -rf /src

RUN useradd --create-home chatlens && mkdir -p /data && chown chatlens /data
USER chatlens
WORKDIR /data
ENTRYPOINT ["chatlens"]
CMD ["--help"]

# The ONNX exports, made with torch and checked against it: fp32 and int8 of the bundled MiniLM (the
# default classifier's and the extractive summariser's encoder, one export for both). `accurate` needs the
# all-mpnet-base-v2 pieces (chatlens[mpnet]): export it the same way on a host that has them.
FROM full AS exports
RUN CHATLENS_EXPORTS_DIR=/home/chatlens/exports chatlens models export default --int8 \
 && CHATLENS_EXPORTS_DIR=/home/chatlens/exports chatlens models export default

# A worker without torch: onnxruntime, tokenizers and numpy ([onnx]) and the exports above.
FROM python:3.11-slim AS slim-worker
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 TZ=UTC CHATLENS_EXPORTS_DIR=/opt/chatlens/onnx
WORKDIR /src
COPY pyproject.toml README.md ./
COPY chatlens ./chatlens
COPY producer ./producer
COPY worker ./worker
COPY eval ./eval
RUN pip install '.[onnx]' && rm -rf /src
COPY --from=exports /home/chatlens/exports /opt/chatlens/onnx
RUN useradd --create-home chatlens && mkdir -p /data && chown chatlens /data
USER chatlens
WORKDIR /data
ENTRYPOINT ["chatlens"]
CMD ["worker", "--help"]

# `docker build .` with no --target builds the full image, as before.
FROM full
