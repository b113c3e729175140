// Load a URDF or SDF file with Gazebo's own parser (libsdformat) and print what Gazebo would
// get: the first model's links, revolute joints and plugins, or the parse errors.
// Built and run by test/test_gazebo_sdformat.py.
#include <iostream>
#include <sdf/sdf.hh>

int main(int argc, char **argv) {
  if (argc != 2) {
    std::cerr << "usage: sdformat_check FILE" << std::endl;
    return 2;
  }
  sdf::Root root;
  sdf::Errors errors = root.Load(argv[1]);
  for (const auto &e : errors) std::cout << "error: " << e.Message() << std::endl;
  const sdf::Model *model = root.Model();
  std::cout << "worlds: " << root.WorldCount() << std::endl;
  if (model != nullptr) {
    int revolute = 0;
    for (uint64_t i = 0; i < model->JointCount(); ++i)
      if (model->JointByIndex(i)->Type() == sdf::JointType::REVOLUTE) ++revolute;
    std::cout << "links: " << model->LinkCount() << std::endl;
    std::cout << "revolute_joints: " << revolute << std::endl;
    sdf::ElementPtr elem = model->Element();  // Model::Plugins() is newer than sdformat12
    if (elem && elem->HasElement("plugin"))
      for (auto p = elem->GetElement("plugin"); p; p = p->GetNextElement("plugin"))
        std::cout << "plugin: " << p->Get<std::string>("filename") << std::endl;
  }
  return errors.empty() ? 0 : 1;
}
