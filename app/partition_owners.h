// PartitionOwners: cluster mode's PartitionDirectory (api/forwarder.h). It learns which member of
// the consumer group owns each partition, and at which advertised HTTP address, from the group
// coordinator (DescribeConsumerGroups: the address rides in each member's client id), every
// couple of seconds and when a forwarded request finds an owner gone. What it learns also places
// the standby copies (StandbyPlacement).
//
// Ownership: owned by the app. Threading: OwnerAddress and Refresh from any thread; a background
// thread asks the coordinator every 2 s, and at most 200 ms after a Refresh.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "api/forwarder.h"
#include "ingest/kafka_admin.h"

namespace ecrm {

class PartitionOwners final : public PartitionDirectory {
 public:
  // `on_group`, if set, is called on the background thread with every description learnt.
  PartitionOwners(std::string brokers, std::string group, std::string topic, uint32_t partitions,
                  std::function<void(const GroupDescription&)> on_group = nullptr);
  ~PartitionOwners() override;

  std::string OwnerAddress(uint32_t partition) const override;
  void Refresh() override;

 private:
  const std::string brokers_, group_, topic_;
  const uint32_t partitions_;
  const std::function<void(const GroupDescription&)> on_group_;
  void Learn();  // one DescribeConsumerGroups round trip

  mutable std::mutex mu_;
  std::shared_ptr<const std::vector<std::string>> owners_;  // guarded by mu_: partition -> addr
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stop_ = false;    // guarded by stop_mu_
  bool wanted_ = false;  // guarded by stop_mu_: a Refresh asked for

  std::thread thread_;
};

}  // namespace ecrm
