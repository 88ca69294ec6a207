# The demo pre-training under mmengine's FlexibleRunner with FSDP (GPUs
# only; tools/gpu_check.sh runs it on one). The EMA teacher is updated on the
# shards: with use_orig_params every parameter of the student and of its
# teacher copy stays addressable, and the size policy wraps the two
# identically, so each rank averages its shard of the teacher with the
# matching shard of the student. Checkpoints hold the whole model.
_base_ = './itpn-demo_fashion-mnist.py'

runner_type = 'FlexibleRunner'
strategy = dict(
    type='FSDPStrategy',
    model_wrapper=dict(
        use_orig_params=True,
        auto_wrap_policy=dict(
            type='torch.distributed.fsdp.wrap.size_based_auto_wrap_policy',
            min_num_params=int(1e5))),
    state_dict_cfg='full')
