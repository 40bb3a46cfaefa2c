# One image for every chatlens role: worker, eval worker, cron scheduler, one-off produce/eval.
FROM python:3.11-slim

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
