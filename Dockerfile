# maix-agent: builds the Cython fastpath and runs `maix-agent run`.
# Models are not in the image: mount a folder holding them (or fetch at start with
# MAIX_AGENT_MODELS_MIRROR) and point models.dir at it (default here /models).
FROM python:3.11-slim-bookworm

RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential mosquitto libgl1 libglib2.0-0 \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/maix-agent
COPY pyproject.toml setup.py README.md ./
COPY agent ./agent
COPY fastpath ./fastpath
COPY models/manifest.toml ./models/manifest.toml
COPY config ./config
RUN pip install --no-cache-dir --upgrade "setuptools>=77" wheel "Cython>=3.0" "numpy>=1.26" \
 && pip install --no-cache-dir --no-build-isolation -e . \
 && python setup.py build_ext --inplace \
 && python -c "import fastpath; fastpath.set_implementation('cython')"

ENV MAIX_AGENT_MODELS__DIR=/models \
    MAIX_AGENT_STORAGE__DIR=/data
VOLUME ["/models", "/data"]
# Fetch models at start when a mirror is given, then run.
CMD ["sh", "-c", "if [ -n \"$MAIX_AGENT_MODELS_MIRROR\" ]; then maix-agent models fetch; fi; exec maix-agent run"]
