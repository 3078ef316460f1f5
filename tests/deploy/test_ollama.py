"""The Ollama REST client against the loopback fake server (real HTTP on 127.0.0.1)."""

from __future__ import annotations

import socket

import pytest

from fakes.ollama_server import FakeOllama
from levcustom.deploy.ollama import OllamaClient, OllamaModel, deploy, file_sha256, modelfile, undeploy
from levcustom.errors import ProviderError

TEMPLATE = '{{- range .Messages }}{{ if eq .Role "user" }}U:{{ .Content }}{{ end }}{{ end }}A:'


@pytest.fixture
def gguf_file(tmp_path):
    import gguf
    import numpy as np

    path = tmp_path / "export" / "model.gguf"
    path.parent.mkdir()
    writer = gguf.GGUFWriter(str(path), "llama")
    for _name, add in (("block_count", writer.add_block_count), ("embedding_length", writer.add_embedding_length),
                     ("context_length", writer.add_context_length)):
        add(4)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tensor("token_embd.weight", np.zeros((4, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_deploy_uploads_creates_verifies_and_deletes(gguf_file, tmp_path):
    model = OllamaModel(name="team/router:v1", gguf=gguf_file, template=TEMPLATE, system="Be brief.",
                        parameters={"temperature": 0, "stop": ["<|end|>", "A:"]})
    with FakeOllama(tmp_path / "server") as fake:
        deployed = deploy(model, fake.host)
        assert deployed.digest == f"sha256:{file_sha256(gguf_file)}" and deployed.model == "team/router:v1"
        assert [m for m, p in fake.requests if p.startswith("/api/blobs/")] == ["HEAD", "POST"]
        shown = OllamaClient(fake.host).show("team/router:v1")
        assert shown["template"] == TEMPLATE and shown["system"] == "Be brief."
        assert shown["parameters"] == "temperature 0\nstop <|end|>\nstop A:"
        # A second deployment of the same file uploads nothing.
        deploy(model, fake.host)
        assert [m for m, p in fake.requests if p.startswith("/api/blobs/")] == ["HEAD", "POST", "HEAD"]
        assert undeploy(deployed) is True
        assert undeploy(deployed) is False  # already gone
        with pytest.raises(ProviderError, match="model 'team/router:v1' not found"):
            OllamaClient(fake.host).show("team/router:v1")
    text = (gguf_file.parent / "Modelfile").read_text()
    assert text.splitlines()[:2] == ["FROM ./model.gguf", f'TEMPLATE """{TEMPLATE}"""']
    assert 'PARAMETER stop "<|end|>"' in text and "PARAMETER temperature 0" in text and 'SYSTEM """Be brief."""' in text


def test_server_errors_are_one_clear_line(gguf_file, tmp_path):
    with FakeOllama(tmp_path / "server") as fake:
        client = OllamaClient(fake.host)
        with pytest.raises(ProviderError, match=r"Ollama POST /api/create failed \(400\): blob sha256:0+ .*not found"):
            client.create(OllamaModel("m", gguf_file, TEMPLATE, None, {}), "sha256:" + "0" * 64)
        # A body that does not match its digest is refused by the server.
        with pytest.raises(ProviderError, match="digest mismatch"):
            client._ok("POST", "/api/blobs/sha256:" + "1" * 64, upload=gguf_file)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ProviderError, match=rf"cannot reach Ollama at http://127.0.0.1:{port}: .*ollama serve"):
        OllamaClient(f"http://127.0.0.1:{port}").show("m")
    with pytest.raises(ProviderError, match="invalid Ollama host"):
        OllamaClient("ftp://x")


def test_modelfile_quotes_string_parameters(tmp_path):
    text = modelfile(OllamaModel("m", tmp_path / "w.gguf", "T", None, {"num_ctx": 4096, "stop": "x y"}))
    assert text == 'FROM ./w.gguf\nTEMPLATE """T"""\nPARAMETER num_ctx 4096\nPARAMETER stop "x y"\n'
