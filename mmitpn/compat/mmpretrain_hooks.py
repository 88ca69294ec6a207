"""mmitpn's fix of mmpretrain 1.x's ``VisualizationHook`` (see
:mod:`mmitpn.compat`).

``mmpretrain_vis_sample_indices``: the hook numbers the samples of a batch
from ``len(batch) * batch_idx``. The last batch of a data set whose size is
no multiple of the batch size is smaller, so its samples get the indices of
earlier ones: with 5 test images in batches of 2, the fifth is drawn as
``2_0.png`` over the third, and ``interval`` picks the wrong samples. The
fixed method numbers them from the loader's batch size (the size of batch
0).
"""
import math
import os.path as osp


def number_samples_from_loader_batch_size():
    from mmengine.fileio import join_path
    from mmpretrain.engine.hooks import VisualizationHook

    def _draw_samples(self, batch_idx, data_batch, data_samples, step=0):
        if self.enable is False:
            return
        if batch_idx == 0 or not hasattr(self, '_loader_batch_size'):
            self._loader_batch_size = len(data_samples)
        start = self._loader_batch_size * batch_idx
        # the first index at or after `start` that the interval picks
        first = math.ceil(start / self.interval) * self.interval
        for sample_id in range(first, start + len(data_samples),
                               self.interval):
            image = data_batch['inputs'][sample_id - start]
            image = image.permute(1, 2, 0).cpu().numpy().astype('uint8')
            data_sample = data_samples[sample_id - start]
            name = (
                osp.basename(data_sample.get('img_path'))
                if 'img_path' in data_sample else str(sample_id))
            draw_args = dict(self.draw_args)
            if self.out_dir is not None:
                draw_args['out_file'] = join_path(self.out_dir,
                                                  f'{name}_{step}.png')
            self._visualizer.visualize_cls(
                image=image,
                data_sample=data_sample,
                step=step,
                name=name,
                **draw_args)

    VisualizationHook._draw_samples = _draw_samples
