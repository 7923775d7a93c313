# The image every node of cluster.yaml runs: Ray's GPU image plus torch and texfarm, so that a spot node
# that boots starts rendering without installing anything.
#   docker build -t texfarm:0.1.0 .
#   aws ecr create-repository --repository-name texfarm
#   aws ecr get-login-password | docker login --username AWS --password-stdin ACCOUNT.dkr.ecr.us-east-1.amazonaws.com
#   docker tag texfarm:0.1.0 ACCOUNT.dkr.ecr.us-east-1.amazonaws.com/texfarm:0.1.0 && docker push $_
# Keep RAY_VERSION equal to the Ray your laptop runs (`texfarm submit` talks to the head's job server).
ARG RAY_VERSION=2.60.0
FROM rayproject/ray:${RAY_VERSION}-py311-gpu
ARG RAY_VERSION
WORKDIR /home/ray/texfarm
COPY --chown=ray:users pyproject.toml README.md ./
COPY --chown=ray:users tasks ./tasks
COPY --chown=ray:users pipelines ./pipelines
COPY --chown=ray:users bench ./bench
# pip resolves torch and torchvision together (a CUDA build); Ray stays the image's own version.
RUN pip install --no-cache-dir . "ray[default]==${RAY_VERSION}"
