// Loads an export the way TF Serving does and runs its serving_default signature.
//
//   serve_check EXPORT_VERSION_DIR INPUT_TXT OUTPUT_TXT [INPUT_TXT OUTPUT_TXT ...]
//
// INPUT_TXT: a header line, then the labels, then the z values (whitespace separated;
// "nan", "inf" and "-inf" parse). The header is "N D" (labels [N], z [N, D]) or
// "N d1 d2 ..." (labels [N], z of shape [d1, d2, ...], any rank, to send bad shapes).
// OUTPUT_TXT: the shape of "images" (rank, then dims) then its float values.
// Several requests run on the one loaded model, in order, as requests reach a server;
// each prints "request I: OK" or "request I: <status>" on stderr.
// Exit codes: 0 all ok, 1 usage / file errors, 2 load errors, 3 some Session::Run failed
// (the status, e.g. "INVALID_ARGUMENT: ...", is printed on stderr).

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <unordered_set>
#include <vector>

#include "tensorflow/cc/saved_model/loader.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/public/session.h"

namespace {

// Reads one request; returns false (with a message) on a malformed file.
bool ReadRequest(const char* path, tensorflow::Tensor* label, tensorflow::Tensor* z) {
  std::ifstream in(path);
  std::string header;
  if (!std::getline(in, header)) {
    std::cerr << "no header in " << path << "\n";
    return false;
  }
  std::istringstream fields(header);
  std::vector<long long> dims;
  long long v;
  while (fields >> v) dims.push_back(v);
  if (dims.size() < 2) {
    std::cerr << "bad input header in " << path << "\n";
    return false;
  }
  long long n = dims[0];
  tensorflow::TensorShape z_shape;
  if (dims.size() == 2) {
    z_shape = tensorflow::TensorShape({n, dims[1]});
  } else {
    for (size_t i = 1; i < dims.size(); ++i) z_shape.AddDim(dims[i]);
  }
  *label = tensorflow::Tensor(tensorflow::DT_INT32, tensorflow::TensorShape({n}));
  *z = tensorflow::Tensor(tensorflow::DT_FLOAT, z_shape);
  auto label_flat = label->flat<int>();
  for (long long i = 0; i < n; ++i) {
    if (!(in >> label_flat(i))) {
      std::cerr << "too few labels in " << path << "\n";
      return false;
    }
  }
  auto z_flat = z->flat<float>();
  std::string token;
  for (long long i = 0; i < z_flat.size(); ++i) {
    if (!(in >> token)) {
      std::cerr << "too few z values in " << path << "\n";
      return false;
    }
    z_flat(i) = std::strtof(token.c_str(), nullptr);
  }
  return true;
}

bool WriteImages(const tensorflow::Tensor& images, const char* path) {
  FILE* out = std::fopen(path, "w");
  if (out == nullptr) {
    std::cerr << "cannot write " << path << "\n";
    return false;
  }
  std::fprintf(out, "%d", images.dims());
  for (int i = 0; i < images.dims(); ++i) std::fprintf(out, " %lld", (long long)images.dim_size(i));
  std::fprintf(out, "\n");
  auto values = images.flat<float>();
  for (long i = 0; i < values.size(); ++i) std::fprintf(out, "%.9g\n", values(i));
  std::fclose(out);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4 || argc % 2 != 0) {
    std::cerr << "usage: " << argv[0] << " EXPORT_DIR INPUT_TXT OUTPUT_TXT [INPUT_TXT OUTPUT_TXT ...]\n";
    return 1;
  }
  std::vector<std::pair<tensorflow::Tensor, tensorflow::Tensor>> requests;
  for (int i = 2; i < argc; i += 2) {
    tensorflow::Tensor label, z;
    if (!ReadRequest(argv[i], &label, &z)) return 1;
    requests.emplace_back(label, z);
  }

  tensorflow::SavedModelBundle bundle;
  tensorflow::Status status =
      tensorflow::LoadSavedModel(tensorflow::SessionOptions(), tensorflow::RunOptions(), argv[1],
                                 std::unordered_set<std::string>{"serve"}, &bundle);
  if (!status.ok()) {
    std::cerr << "load failed: " << status.ToString() << "\n";
    return 2;
  }
  const auto& signatures = bundle.meta_graph_def.signature_def();
  auto it = signatures.find("serving_default");
  if (it == signatures.end()) {
    std::cerr << "load failed: no serving_default signature\n";
    return 2;
  }
  const tensorflow::SignatureDef& signature = it->second;
  if (signature.method_name() != "tensorflow/serving/predict") {
    std::cerr << "load failed: method_name " << signature.method_name() << "\n";
    return 2;
  }
  for (const char* key : {"label", "z"}) {
    if (signature.inputs().count(key) == 0) {
      std::cerr << "load failed: serving_default has no input " << key << "\n";
      return 2;
    }
  }
  if (signature.outputs().count("images") == 0) {
    std::cerr << "load failed: serving_default has no output images\n";
    return 2;
  }

  int exit_code = 0;
  for (size_t r = 0; r < requests.size(); ++r) {
    std::vector<std::pair<std::string, tensorflow::Tensor>> feeds = {
        {signature.inputs().at("label").name(), requests[r].first},
        {signature.inputs().at("z").name(), requests[r].second},
    };
    std::vector<tensorflow::Tensor> outputs;
    status = bundle.session->Run(feeds, {signature.outputs().at("images").name()}, {}, &outputs);
    if (!status.ok()) {
      std::cerr << "request " << r << ": " << status.ToString() << "\n";
      exit_code = 3;
      continue;
    }
    if (outputs[0].dtype() != tensorflow::DT_FLOAT) {
      std::cerr << "request " << r << ": images dtype " << outputs[0].dtype() << "\n";
      exit_code = 3;
      continue;
    }
    if (!WriteImages(outputs[0], argv[3 + 2 * r])) return 1;
    std::cerr << "request " << r << ": OK\n";
  }
  return exit_code;
}
