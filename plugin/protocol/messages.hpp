// The agent's socket protocol. One request or reply per SOCK_SEQPACKET
// message (boundaries kept by the kernel, so no length prefix), a JSON
// object of at most kMaxMessage bytes; fds travel with a message by
// SCM_RIGHTS. Peers must be root (SO_PEERCRED).
//
//   hook -> agent  {"op":"create","id":ID,"bundle":BUNDLE,"secrets":ANNOTATION,
//                   "task":TASK,"identity":{"integration":I,...}}  + pidfd
//                  ("task": io.secretshim.task, cluster mode; either may be
//                  empty; the identity: plugin/identity/workload_identity.hpp;
//                  ID and BUNDLE as the OCI state gives them: together they
//                  name the task, plugin/agent/task_key.hpp; a hook older
//                  than bundles sends none)
//   agent -> hook  {"ok":true,"mounts":[{"target":T,"directory":B}...]} + one fd each
//   hook -> agent  {"op":"attached","ok":B,"error":E,"locked":B}
//                  ("locked": the hook locked the mounts' flags, userns_lock.hpp)
//   agent -> hook  {"ok":true}
//   hook -> agent  {"op":"release","id":ID,"bundle":BUNDLE}  (poststop; the hook
//                  sends it and closes: the agent's {"ok":true} is for other clients.
//                  It flushes the task with that id and bundle. Without a
//                  bundle (a hook older than bundles): the task with that id
//                  if exactly one runs, else none; every task is flushed
//                  when its init exits anyway)
//   ctl -> agent   {"op":"secret.create","name":N,"grants":[RULE...]} + a sealed memfd,
//                  {"op":"secret.grant"|"secret.revoke","name":N,"rule":RULE},
//                  secret.ls, secret.inspect, secret.rm, status,
//                  {"op":"task.ls","after":ID,"after_bundle":BUNDLE} (paged:
//                  plugin/agent/task_list.hpp)
//   any failure    {"ok":false,"error":ONE_LINE}
#pragma once

#include <cstddef>
#include <string_view>

namespace secretshim::plugin {

inline constexpr std::size_t kMaxMessage = 64 * 1024;
inline constexpr std::string_view kDefaultSocket = "/run/secretshim/agent.sock";
inline constexpr std::string_view kSecretsAnnotation = "io.secretshim.secrets";
// Cluster mode: ties a container to its task's assignment in etcd.
inline constexpr std::string_view kTaskAnnotation = "io.secretshim.task";

}  // namespace secretshim::plugin
