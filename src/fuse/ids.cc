// ward's node ids and their mapping to the file system's; the contract is in ids.h.
#include "fuse/ids.h"

#include <algorithm>

namespace ward::fuse::detail {

Nodes::Nodes() {
  Node root;
  root.fs = kRoot;
  root.kernel_refs = 1;
  root.type = 0040000;
  nodes_[kRoot] = root;
  by_fs_[kRoot] = kRoot;
}

std::string Nodes::key(std::uint64_t parent, std::string_view name) {
  std::string k(reinterpret_cast<const char*>(&parent), sizeof parent);
  k.append(name);
  return k;
}

std::uint64_t Nodes::entry(std::uint64_t fs, std::uint64_t parent, std::string_view name,
                           std::uint64_t generation, std::uint32_t type) {
  std::uint64_t id;
  if (auto it = by_fs_.find(fs); it != by_fs_.end()) {
    id = it->second;
  } else {
    id = next_++;
    Node n;
    n.fs = fs;
    n.generation = generation;
    n.type = type;
    nodes_[id] = n;
    by_fs_[fs] = id;
  }
  Node& n = nodes_[id];
  if (id != kRoot) {
    ++n.kernel_refs;
    ++n.fs_refs;
  }
  if (parent != 0 && !name.empty() && name != "." && name != "..") {
    // A name now leads here; a node remembers one name to find it again by (hard links: the
    // first one that still exists).
    set_name(key(parent, name), id);
    if (n.parent == 0 && id != kRoot) {
      n.parent = parent;
      n.name = std::string(name);
    }
  }
  return id;
}

Node* Nodes::find(std::uint64_t ward) {
  auto it = nodes_.find(ward);
  return it == nodes_.end() ? nullptr : &it->second;
}

std::uint64_t Nodes::named(std::uint64_t parent, std::string_view name) const {
  auto it = by_name_.find(key(parent, name));
  return it == by_name_.end() ? 0 : it->second;
}

std::uint64_t Nodes::to_ward(std::uint64_t fs) const {
  auto it = by_fs_.find(fs);
  return it == by_fs_.end() ? 0 : it->second;
}

Nodes::Forget Nodes::forget(std::uint64_t ward, std::uint64_t n) {
  Node* node = find(ward);
  if (!node || ward == kRoot) return {};
  node->kernel_refs -= std::min(n, node->kernel_refs);
  Forget f;
  f.fs = node->fs;
  // The instance keeps at least one lookup while the kernel holds any.
  f.count = node->kernel_refs == 0 ? node->fs_refs : std::min(n, node->fs_refs > 0 ? node->fs_refs - 1 : 0);
  node->fs_refs -= f.count;
  if (node->kernel_refs == 0) {
    if (node->parent != 0) {
      auto k = key(node->parent, node->name);
      if (auto it = by_name_.find(k); it != by_name_.end() && it->second == ward) by_name_.erase(it);
    }
    // Other names (hard links) that still lead here stay in the index; they are checked against
    // the node table wherever they are used.
    // Only if it maps here: two ward nodes can share an instance id after a restart (hard links).
    if (auto it = by_fs_.find(node->fs); node->fs != 0 && it != by_fs_.end() && it->second == ward) by_fs_.erase(it);
    nodes_.erase(ward);
  }
  if (f.fs == 0 || f.count == 0) return {};
  return f;
}

void Nodes::set_name(const std::string& k, std::uint64_t ward) {
  auto [it, fresh] = by_name_.try_emplace(k, ward);
  if (!fresh) {
    if (it->second == ward) return;
    erase_name(k);
    by_name_[k] = ward;
  }
  if (Node* n = find(ward)) ++n->names;
}

// The name `k` leads nowhere now; a node that remembered it takes another name, if it has one.
void Nodes::erase_name(const std::string& k) {
  auto it = by_name_.find(k);
  if (it == by_name_.end()) return;
  std::uint64_t id = it->second;
  by_name_.erase(it);
  Node* n = find(id);
  if (!n) return;
  if (n->names > 0) --n->names;
  if (n->parent != 0 && key(n->parent, n->name) == k) drop_name(id);
}

void Nodes::drop_name(std::uint64_t ward) {
  Node* n = find(ward);
  if (!n) return;
  n->parent = 0;
  n->name.clear();
  if (n->names == 0) return;  // no other name: scanning the index would find nothing
  for (const auto& [k, id] : by_name_) {
    if (id != ward) continue;
    std::uint64_t p;
    std::copy_n(k.data(), sizeof p, reinterpret_cast<char*>(&p));
    n->parent = p;
    n->name = k.substr(sizeof p);
    break;
  }
}

void Nodes::unlinked(std::uint64_t parent, std::string_view name) { erase_name(key(parent, name)); }

void Nodes::renamed(std::uint64_t from_dir, std::string_view from, std::uint64_t to_dir, std::string_view to) {
  auto k = key(from_dir, from), t = key(to_dir, to);
  if (k == t) return;
  erase_name(t);  // the node the target named, if any, lost that name
  auto it = by_name_.find(k);
  if (it == by_name_.end()) return;
  std::uint64_t id = it->second;
  erase_name(k);
  Node* n = find(id);
  if (!n) return;
  set_name(t, id);
  n->parent = to_dir;
  n->name = std::string(to);
}

std::vector<std::uint64_t> Nodes::begin_restart() {
  by_fs_.clear();
  by_fs_[kRoot] = kRoot;
  std::vector<std::pair<int, std::uint64_t>> order;
  for (auto& [id, n] : nodes_) {
    if (id == kRoot) continue;
    n.fs = 0;  // fs_refs stays: a journal replay brings the new instance's count back to it
    int depth = 0;
    for (std::uint64_t p = n.parent; p != 0 && p != kRoot && depth < 4096; ++depth) {
      Node* pn = find(p);
      p = pn ? pn->parent : 0;
    }
    order.emplace_back(depth, id);
  }
  std::sort(order.begin(), order.end());
  std::vector<std::uint64_t> out;
  for (auto& [d, id] : order) out.push_back(id);
  return out;
}

void Nodes::rebind(std::uint64_t ward, std::uint64_t fs, std::uint64_t refs) {
  Node* n = find(ward);
  if (!n) return;
  // Two ward nodes found as one instance node (a hard link seen under two names before): both
  // stay bound; ids from the instance map back to the first.
  n->fs = fs;
  n->fs_refs = refs;
  n->stale = false;
  by_fs_.try_emplace(fs, ward);
}

void Nodes::mark_stale(std::uint64_t ward) {
  if (Node* n = find(ward); n && ward != kRoot) {
    n->stale = true;
    n->fs = 0;
    n->fs_refs = 0;
  }
}

}  // namespace ward::fuse::detail
