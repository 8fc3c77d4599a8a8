#include "app/partition_owners.h"

#include <pthread.h>

#include "common/logging.h"

namespace ecrm {

PartitionOwners::PartitionOwners(std::string brokers, std::string group, std::string topic,
                                 uint32_t partitions,
                                 std::function<void(const GroupDescription&)> on_group)
    : brokers_(std::move(brokers)),
      group_(std::move(group)),
      topic_(std::move(topic)),
      partitions_(partitions),
      on_group_(std::move(on_group)),
      owners_(std::make_shared<std::vector<std::string>>(partitions)) {
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "ecrm-owners");
    std::unique_lock<std::mutex> lock(stop_mu_);
    while (!stop_) {
      wanted_ = false;
      lock.unlock();
      Learn();
      lock.lock();
      // Every 2 s, or sooner when asked (but not more often than every 200 ms).
      stop_cv_.wait_for(lock, std::chrono::seconds(2), [this] { return stop_ || wanted_; });
      if (!stop_) stop_cv_.wait_for(lock, std::chrono::milliseconds(200), [this] { return stop_; });
    }
  });
}

PartitionOwners::~PartitionOwners() {
  {
    std::lock_guard<std::mutex> lock(stop_mu_);
    stop_ = true;
  }
  stop_cv_.notify_all();
  thread_.join();
}

std::string PartitionOwners::OwnerAddress(uint32_t partition) const {
  std::shared_ptr<const std::vector<std::string>> owners;
  {
    std::lock_guard<std::mutex> lock(mu_);
    owners = owners_;
  }
  return partition < owners->size() ? (*owners)[partition] : std::string();
}

void PartitionOwners::Refresh() {
  {
    std::lock_guard<std::mutex> lock(stop_mu_);
    wanted_ = true;
  }
  stop_cv_.notify_all();
}

void PartitionOwners::Learn() {
  auto group = DescribeGroup(brokers_, group_, topic_, 2000);
  if (!group.ok()) {
    spdlog::debug("partition owners: {}", group.status().ToString());
    return;  // keep what was known
  }
  auto owners = std::make_shared<std::vector<std::string>>(partitions_);
  for (const auto& m : group->members) {
    for (int p : m.partitions) {
      if (p >= 0 && static_cast<uint32_t>(p) < partitions_) (*owners)[p] = m.http_addr;
    }
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    owners_ = std::move(owners);
  }
  if (on_group_) on_group_(*group);
}

}  // namespace ecrm
