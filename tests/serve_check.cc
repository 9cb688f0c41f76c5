// Loads an export the way TF Serving does and runs its serving_default signature.
//
//   serve_check EXPORT_VERSION_DIR INPUT_TXT OUTPUT_TXT
//
// INPUT_TXT:  "N D" then N int labels then N*D floats (whitespace separated).
// OUTPUT_TXT: the shape of "images" (rank, then dims) then its float values.
// Exit codes: 0 ok, 1 usage / file errors, 2 load errors, 3 Session::Run errors; the
// status (e.g. "INVALID_ARGUMENT: ...") is printed on stderr.

#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <unordered_set>
#include <vector>

#include "tensorflow/cc/saved_model/loader.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/public/session.h"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: " << argv[0] << " EXPORT_DIR INPUT_TXT OUTPUT_TXT\n";
    return 1;
  }
  std::ifstream in(argv[2]);
  long n = 0, d = 0;
  if (!(in >> n >> d) || n < 0 || d < 0) {
    std::cerr << "bad input header in " << argv[2] << "\n";
    return 1;
  }
  tensorflow::Tensor label(tensorflow::DT_INT32, tensorflow::TensorShape({n}));
  tensorflow::Tensor z(tensorflow::DT_FLOAT, tensorflow::TensorShape({n, d}));
  auto label_flat = label.flat<int>();
  auto z_flat = z.flat<float>();
  for (long i = 0; i < n; ++i) {
    if (!(in >> label_flat(i))) {
      std::cerr << "too few labels\n";
      return 1;
    }
  }
  for (long i = 0; i < n * d; ++i) {
    if (!(in >> z_flat(i))) {
      std::cerr << "too few z values\n";
      return 1;
    }
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

  std::vector<std::pair<std::string, tensorflow::Tensor>> feeds = {
      {signature.inputs().at("label").name(), label},
      {signature.inputs().at("z").name(), z},
  };
  std::vector<tensorflow::Tensor> outputs;
  status = bundle.session->Run(feeds, {signature.outputs().at("images").name()}, {}, &outputs);
  if (!status.ok()) {
    std::cerr << "run failed: " << status.ToString() << "\n";
    return 3;
  }
  const tensorflow::Tensor& images = outputs[0];
  if (images.dtype() != tensorflow::DT_FLOAT) {
    std::cerr << "run failed: images dtype " << images.dtype() << "\n";
    return 3;
  }
  FILE* out = std::fopen(argv[3], "w");
  if (out == nullptr) {
    std::cerr << "cannot write " << argv[3] << "\n";
    return 1;
  }
  std::fprintf(out, "%d", images.dims());
  for (int i = 0; i < images.dims(); ++i) std::fprintf(out, " %lld", (long long)images.dim_size(i));
  std::fprintf(out, "\n");
  auto values = images.flat<float>();
  for (long i = 0; i < values.size(); ++i) std::fprintf(out, "%.9g\n", values(i));
  std::fclose(out);
  return 0;
}
